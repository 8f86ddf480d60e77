"""The one JSON conversion of results."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from mechscope.serialize import to_json


class Colour(enum.Enum):
    red = "red"


@dataclass(frozen=True)
class Result:
    json_skip: ClassVar[frozenset[str]] = frozenset({"model"})
    json_extra: ClassVar[tuple[str, ...]] = ("double",)

    score: float
    values: torch.Tensor
    model: object = None
    tags: dict[int, np.float32] = field(default_factory=dict)

    @property
    def double(self) -> float:
        return 2 * self.score


@dataclass
class Summary:
    maps: torch.Tensor

    def __json__(self) -> dict[str, float]:
        return {"max": float(self.maps.max())}


def test_dataclass_fields_skip_and_extra() -> None:
    r = Result(score=0.25, values=torch.tensor([[1.0, float("inf")]]), model=object(), tags={3: np.float32(0.5)})
    assert to_json(r) == {"score": 0.25, "values": [[1.0, None]], "tags": {"3": 0.5}, "double": 0.5}


def test_summary_method_wins_over_fields() -> None:
    assert to_json([Summary(torch.arange(4.0))]) == [{"max": 3.0}]


def test_scalars_paths_enums_and_nonfinite() -> None:
    value = {"p": Path("/a/b"), "c": Colour.red, "n": np.int64(7), "b": np.bool_(True), "x": float("nan"),
             "t": torch.tensor(2), "s": {2, 1}, "neg": -math.inf}
    out = to_json(value)
    assert out == {"p": "/a/b", "c": "red", "n": 7, "b": True, "x": None, "t": 2, "s": [1, 2], "neg": None}
    json.dumps(out, allow_nan=False)  # strictly valid JSON


def test_tensor_on_graph_and_half() -> None:
    t = torch.ones(2, requires_grad=True) * 3
    assert to_json(t.half()) == [3.0, 3.0]
    assert to_json(t) == [3.0, 3.0]

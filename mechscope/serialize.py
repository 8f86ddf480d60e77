"""One conversion of results to plain JSON values.

`to_json` turns a result into values `json.dumps` accepts: a dataclass field by field
(without the fields named in its `json_skip`, with the properties named in its
`json_extra`), mappings with string keys, sequences as lists, tensors and arrays as nested
lists, numpy scalars as Python numbers, non-finite floats as None, paths and enums as
strings. A result whose JSON form is a summary rather than its fields (the maps of a figure
reduced to a few numbers) defines `__json__(self)` returning that summary.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Score:
    ...     accuracy: float
    ...     loss: float
    >>> to_json({"probe": Score(accuracy=0.5, loss=float("nan"))})
    {'probe': {'accuracy': 0.5, 'loss': None}}
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["to_json", "JsonSummary"]


@runtime_checkable
class JsonSummary(Protocol):
    """A result whose JSON form is a summary it computes, not its fields."""

    def __json__(self) -> Any: ...


def to_json(value: Any) -> Any:
    """Plain JSON form of `value` (see the module docstring for the rules)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, JsonSummary) and not isinstance(value, type):
        return to_json(value.__json__())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_json(v) for v in value), key=repr)
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu()
    if hasattr(value, "tolist"):  # tensors, arrays and numpy scalars
        return to_json(value.tolist())
    return str(value)


def _dataclass(value: Any) -> dict[str, Any]:
    skip: frozenset[str] = frozenset(getattr(type(value), "json_skip", ()))
    extra: tuple[str, ...] = getattr(type(value), "json_extra", ())
    out = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}
    for name in extra:
        out[name] = to_json(getattr(value, name))
    return out

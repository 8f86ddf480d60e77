"""Describe every layer of a model: its type, output shape and parameter count, one row per call.

`activation_bytes` adds up the rows' outputs: the bytes one input's forward pass writes into
module outputs, the unit a memory budget is counted in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor, nn

from mechscope.capture.calls import call_name, trace_calls

__all__ = ["LayerInfo", "activation_bytes", "describe_layers"]


@dataclass(frozen=True)
class LayerInfo:
    """One row of a model summary: one call of a module (`name`, `name:1`, ...)."""

    name: str  # dotted path from named_modules(), with `:k` for a module's later calls
    type: str  # module class name
    output_shape: tuple[int, ...] | None  # per-example shape of the (first) output tensor, None if none
    n_params: int  # parameters owned directly by this module (not its children)
    output_type: str | None = None  # "Tensor" or the container holding it ("tuple", a ModelOutput); None: did not run
    itemsize: int | None = None  # bytes per element of that tensor (4 for float32); None if there is none

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        row = asdict(self)
        row["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        return row


def describe_layers(model: nn.Module, example: Tensor) -> list[LayerInfo]:
    """Run one example batch and report every call's output shape (batch dimension dropped).

    Any output is understood: a tensor, or a tuple, list or mapping (a Hugging Face
    `ModelOutput`) holding one, whose first tensor's shape is reported with the container
    named in `output_type`. An output without a tensor gets `output_shape=None`.

    Args:
        model: Any module.
        example: A valid input batch, shape (batch, ...).

    Returns:
        One LayerInfo per call of each named submodule, in `named_modules()` order; a module
        called k times gives rows `name`, `name:1`, ... `name:{k-1}` in call order, one that
        did not run a row with `output_shape=None`.

    Example:
        >>> [row.name for row in describe_layers(resnet, x) if row.name.startswith("layer1.0.relu")]
        ['layer1.0.relu', 'layer1.0.relu:1']
    """
    calls = trace_calls(model, example, _summary)
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        n_params = sum(p.numel() for p in module.parameters(recurse=False))
        for index, (shape, kind, itemsize) in enumerate(calls.get(name) or [(None, None, None)]):
            rows.append(LayerInfo(call_name(name, index), type(module).__name__, shape, n_params, kind, itemsize))
    return rows


def activation_bytes(rows: Iterable[LayerInfo]) -> int:
    """Bytes of every layer's output for one input: the sum of `prod(output_shape) * itemsize` over `rows`.

    A count of module outputs from `describe_layers`, not a measurement: a container's row
    counts again the tensor its last child returned, and tensors made by plain code in a
    `forward` (`out += identity`, an attention matrix) are not seen. Rows without a tensor count 0.

    Example:
        >>> activation_bytes(describe_layers(nn.Sequential(nn.Linear(3, 5), nn.ReLU()), torch.rand(2, 3)))
        40
    """
    return sum(math.prod(row.output_shape) * row.itemsize for row in rows
               if row.output_shape is not None and row.itemsize is not None)


def _summary(output: Any) -> tuple[tuple[int, ...] | None, str, int | None]:
    """(per-example shape of the first tensor, or None; the output's type name; that tensor's bytes per element)."""
    tensor = _first(output, depth=0)
    if tensor is None:
        return None, type(output).__name__, None
    return tuple(int(d) for d in tensor.shape[1:]), type(output).__name__, tensor.element_size()


def _first(value: Any, depth: int) -> Tensor | None:
    """The first tensor in `value`, looking into tuples, lists and mappings (3 levels deep)."""
    if isinstance(value, Tensor):
        return value
    if depth >= 3:
        return None
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        found = _first(item, depth + 1)
        if found is not None:
            return found
    return None

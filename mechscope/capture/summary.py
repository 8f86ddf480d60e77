"""Describe every layer of a model: its type, output shape and parameter count."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.capture import capture
from mechscope.capture.modes import eval_mode
from mechscope.capture.names import layer_names
from mechscope.capture.record import model_device

__all__ = ["LayerInfo", "describe_layers"]


@dataclass(frozen=True)
class LayerInfo:
    """One row of a model summary."""

    name: str  # dotted path from named_modules()
    type: str  # module class name
    output_shape: tuple[int, ...] | None  # per-example shape, None if the layer did not run
    n_params: int  # parameters owned directly by this module (not its children)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        row = asdict(self)
        row["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        return row


def describe_layers(model: nn.Module, example: Tensor) -> list[LayerInfo]:
    """Run one example batch and report every layer's output shape (batch dimension dropped).

    Args:
        model: Any module.
        example: A valid input batch, shape (batch, ...).

    Returns:
        One LayerInfo per named submodule, in `named_modules()` order.
    """
    names = layer_names(model)
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    with eval_mode(model), torch.no_grad(), capture(model, names) as store:
        model(example.to(model_device(model)))
    for name in store.names:
        shapes[name] = tuple(store.act(name).shape[1:])
    return [
        LayerInfo(
            name=name,
            type=type(modules[name]).__name__,
            output_shape=shapes.get(name),
            n_params=sum(p.numel() for p in modules[name].parameters(recurse=False)),
        )
        for name in names
    ]

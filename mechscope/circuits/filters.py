"""Filter coefficients: the kernels of any conv layer, ready to draw.

Seed 004 lists "observe the value of filter coefficients" among the basic tools; first-layer
kernels read directly as the edge and blob detectors they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from mechscope.capture import get_layer
from mechscope.circuits.layers import conv_layers
from mechscope.errors import UnsupportedModelError

__all__ = ["Kernels", "conv_kernels"]


@dataclass(frozen=True)
class Kernels:
    """The weights of one conv layer."""

    json_extra: ClassVar[tuple[str, ...]] = ("shape", "norms")

    layer: str  # dotted name of the conv module
    weight: Tensor  # (out_channel, in_channel / groups, *kernel)
    bias: Tensor | None  # (out_channel,) or None

    @property
    def shape(self) -> tuple[int, ...]:
        """(out_channel, in_channel / groups, *kernel) of `weight`."""
        return tuple(self.weight.shape)

    @property
    def norms(self) -> Tensor:
        """L2 norm of each output channel's kernel, shape (out_channel,)."""
        return self.weight.reshape(self.weight.shape[0], -1).norm(dim=1)


def conv_kernels(model: nn.Module, layer: str | None = None) -> Kernels:
    """Return the kernels of the conv module `layer` (default: the first conv layer).

    Args:
        model: Any module with Conv1d/2d/3d layers.
        layer: Dotted name of a conv module; None takes the first one.

    Raises:
        UnsupportedModelError: The model has no conv module, or `layer` is not one.
        LayerNameError: `layer` names no module.

    Example:
        >>> conv_kernels(model).weight.shape    # DigitCNN: conv1
        torch.Size([8, 1, 3, 3])
    """
    convs = conv_layers(model)
    if layer is None:
        if not convs:
            raise UnsupportedModelError(f"{type(model).__name__} has no conv layer, so it has no kernels to show.")
        layer = convs[0]
    module = get_layer(model, layer)
    if layer not in convs:
        raise UnsupportedModelError(
            f"Layer {layer!r} is a {type(module).__name__}, not a conv layer; kernels exist for {convs}."
        )
    weight: Tensor = getattr(module, "weight")
    bias: Tensor | None = getattr(module, "bias", None)
    return Kernels(layer, weight.detach().cpu().clone(), None if bias is None else bias.detach().cpu().clone())

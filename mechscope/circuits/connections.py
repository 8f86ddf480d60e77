"""Channel-to-channel connection strengths between consecutive conv layers, read from the weights.

"Features are connected by weights, forming circuits" (Olah et al., Zoom In, cited by seed
004). Between two consecutive conv layers, output channel o of the second reads input
channel i through the kernel slice `W[o, i]` (kh x kw). Its L2 norm says how strongly the
two are wired, its signed sum whether channel i mostly excites (+) or inhibits (-) channel o
on a flat input patch. Pooling and pointwise layers in between keep the channel index, so
input channel i of the second conv is output channel i of the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture import get_layer
from mechscope.circuits._modules import conv_feeding, conv_layers
from mechscope.errors import ConfigError, UnsupportedModelError

__all__ = ["ConvConnections", "connection_strengths", "conv_connections", "connections_into"]


def connection_strengths(conv: nn.Module) -> tuple[Tensor, Tensor]:
    """L2 norm and signed sum of every kernel slice of a conv module.

    Grouped convolutions are spread into the full (out, in) matrix; channels in
    different groups are not connected (zero).

    Args:
        conv: An nn.Conv1d/2d/3d.

    Returns:
        l2 and signed_sum, each (out_channel, in_channel).

    Example:
        >>> l2, signed = connection_strengths(model.conv2)     # (16, 8) each
    """
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise UnsupportedModelError(f"connection_strengths needs a conv module; got {type(conv).__name__}.")
    weight = conv.weight.detach().cpu()  # (out, in / groups, *kernel)
    flat = weight.flatten(2)
    l2_grouped, sum_grouped = flat.norm(dim=2), flat.sum(dim=2)  # (out, in / groups)
    groups, out_ch, in_ch = conv.groups, conv.out_channels, conv.in_channels
    if groups == 1:
        return l2_grouped, sum_grouped
    l2 = torch.zeros(out_ch, in_ch, dtype=weight.dtype)
    signed = torch.zeros(out_ch, in_ch, dtype=weight.dtype)
    out_per, in_per = out_ch // groups, in_ch // groups
    for g in range(groups):
        rows, cols = slice(g * out_per, (g + 1) * out_per), slice(g * in_per, (g + 1) * in_per)
        l2[rows, cols] = l2_grouped[rows]
        signed[rows, cols] = sum_grouped[rows]
    return l2, signed


@dataclass(frozen=True)
class ConvConnections:
    """How the channels of one conv layer feed the next conv layer."""

    source: str  # conv module whose output channels are read
    target: str  # conv module reading them
    l2: Tensor  # (target_channel, source_channel) L2 norm of each kernel slice
    signed_sum: Tensor  # (target_channel, source_channel) sum of each kernel slice
    top: int  # strongest connections listed per channel

    @property
    def top_inbound(self) -> Tensor:
        """(target_channel, top): the source channels wired most strongly (L2) into each target channel."""
        return _top(self.l2, self.top)

    @property
    def top_outbound(self) -> Tensor:
        """(source_channel, top): the target channels each source channel feeds most strongly (L2)."""
        return _top(self.l2.t(), self.top)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with both matrices and the top lists."""
        return {
            "source": self.source,
            "target": self.target,
            "l2": self.l2.tolist(),
            "signed_sum": self.signed_sum.tolist(),
            "top_inbound": self.top_inbound.tolist(),
            "top_outbound": self.top_outbound.tolist(),
        }


def conv_connections(model: nn.Module, *, top: int = 3) -> tuple[ConvConnections, ...]:
    """Connection strengths of every pair of consecutive conv layers.

    Conv modules are taken in registration order; a pair counts when the second's input
    channels equal the first's output channels.

    Args:
        model: Any module.
        top: Strongest connections listed per channel.

    Returns:
        One ConvConnections per consecutive pair (empty for fewer than two conv layers).

    Example:
        >>> first = conv_connections(model)[0]          # DigitCNN: conv1 -> conv2
        >>> first.top_inbound[5]                         # conv1 channels feeding conv2 channel 5
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer; got {top!r}.")
    names = conv_layers(model)
    pairs = []
    for source, target in zip(names, names[1:]):
        src, tgt = get_layer(model, source), get_layer(model, target)
        if getattr(tgt, "in_channels") != getattr(src, "out_channels"):
            continue
        l2, signed = connection_strengths(tgt)
        pairs.append(ConvConnections(source, target, l2, signed, top))
    return tuple(pairs)


def connections_into(model: nn.Module, layer: str, *, top: int = 3) -> ConvConnections | None:
    """The connections whose target conv produces `layer` (e.g. conv2 -> conv3 for "relu3"), if any."""
    target = conv_feeding(model, layer)
    for pair in conv_connections(model, top=top):
        if pair.target == target:
            return pair
    return None


def _top(matrix: Tensor, k: int) -> Tensor:
    return torch.sort(matrix, dim=1, descending=True, stable=True).indices[:, : min(k, matrix.shape[1])]

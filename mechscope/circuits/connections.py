"""Channel-to-channel connection strengths between conv layers that feed each other, read from the weights.

"Features are connected by weights, forming circuits" (Olah et al., Zoom In, cited by seed
004). When conv A feeds conv B, output channel o of B reads channel i of A through the
kernel slice `W_B[o, offset + i]` (kh x kw). Its L2 norm says how strongly the two are
wired, its signed sum whether channel i mostly excites (+) or inhibits (-) channel o on a
flat input patch.

Which convs feed which comes from the model's dataflow (`mechscope.circuits.dataflow`), not
from registration order: pooling, norms, activations and residual adds keep the channel
index, so B's input channel offset + i is A's output channel i. At a residual add B reads
the sum of several convs' outputs (`offset` 0 for each); at a concatenation each source
sits at its own offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.circuits._modules import conv_feeding
from mechscope.circuits.dataflow import layer_graph
from mechscope.errors import ConfigError, UnsupportedModelError

__all__ = ["ConvConnections", "connection_strengths", "conv_connections", "connections_into"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


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
    l2 = torch.zeros(out_ch, in_ch, dtype=weight.dtype, device="cpu")
    signed = torch.zeros(out_ch, in_ch, dtype=weight.dtype, device="cpu")
    out_per, in_per = out_ch // groups, in_ch // groups
    for g in range(groups):
        rows, cols = slice(g * out_per, (g + 1) * out_per), slice(g * in_per, (g + 1) * in_per)
        l2[rows, cols] = l2_grouped[rows]
        signed[rows, cols] = sum_grouped[rows]
    return l2, signed


@dataclass(frozen=True)
class ConvConnections:
    """How the channels of one conv layer feed another conv layer."""

    source: str  # conv module whose output channels are read
    target: str  # conv module reading them
    l2: Tensor  # (target_channel, source_channel) L2 norm of each kernel slice
    signed_sum: Tensor  # (target_channel, source_channel) sum of each kernel slice
    top: int  # strongest connections listed per channel
    offset: int = 0  # input channel of `target` that reads `source`'s channel 0 (> 0 after a concatenation)

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
            "offset": self.offset,
            "l2": self.l2.tolist(),
            "signed_sum": self.signed_sum.tolist(),
            "top_inbound": self.top_inbound.tolist(),
            "top_outbound": self.top_outbound.tolist(),
        }


def conv_connections(
    model: nn.Module, *, top: int = 3, example: Tensor | None = None
) -> tuple[ConvConnections, ...]:
    """Connection strengths of every pair of conv layers where the first feeds the second.

    Pairs follow the dataflow (`layer_graph`): conv A feeds conv B when A's output reaches
    B's input through elementwise ops, norms, activations, pooling, residual adds or
    concatenation. A residual block's first conv is fed by the previous block's last conv
    *and* by whatever the identity branch carries.

    Args:
        model: Any module.
        top: Strongest connections listed per channel.
        example: A small batch of inputs, used only when torch.fx cannot trace the model
            (the autograd graph of one forward pass on it is read instead).

    Returns:
        One ConvConnections per feeding pair, by target then source in run order (empty
        for fewer than two conv layers). A pair whose channel counts do not line up is left out.

    Raises:
        ConfigError: `top` is not a positive integer.
        UnsupportedModelError: the dataflow cannot be read (see `layer_graph`).

    Example:
        >>> first = conv_connections(model)[0]          # DigitCNN: conv1 -> conv2
        >>> first.top_inbound[5]                         # conv1 channels feeding conv2 channel 5
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer; got {top!r}.")
    graph = layer_graph(model, example=example)
    modules = dict(model.named_modules())
    pairs = []
    for feed in graph.feeds:
        src, tgt = modules.get(feed.source), modules.get(feed.target)
        if not isinstance(src, _CONV) or not isinstance(tgt, _CONV):
            continue
        offset = feed.aligned(src.out_channels, tgt.in_channels)
        if offset is None:
            continue
        l2, signed = connection_strengths(tgt)
        columns = slice(offset, offset + src.out_channels)
        pairs.append(ConvConnections(feed.source, feed.target, l2[:, columns], signed[:, columns], top, offset))
    return tuple(pairs)


def connections_into(
    model: nn.Module, layer: str, *, top: int = 3, example: Tensor | None = None
) -> ConvConnections | None:
    """The connections into the conv that produces `layer` (e.g. conv2 -> conv3 for "relu3"), if any.

    When several convs feed it (a residual sum), the one that ran last is returned; all of
    them are in `conv_connections`.
    """
    target = conv_feeding(model, layer, example=example)
    found = [pair for pair in conv_connections(model, top=top, example=example) if pair.target == target]
    return found[-1] if found else None


def _top(matrix: Tensor, k: int) -> Tensor:
    return torch.sort(matrix, dim=1, descending=True, stable=True).indices[:, : min(k, matrix.shape[1])]

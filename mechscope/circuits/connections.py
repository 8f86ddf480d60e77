"""Unit-to-unit connection strengths between layers that feed each other, read from the weights.

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

`unit_connections` reads the same links between any layers of units (the activations a
report pages through): unit layer S feeds unit layer T through the weights of conv/linear
layer W when W reads S and W's output makes up T; it also links the first unit layer to
the input features and the last to the outputs, where a Linear reads them directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from mechscope.circuits.dataflow import WEIGHT_LAYERS, LayerGraph, layer_graph
from mechscope.circuits.layers import conv_feeding
from mechscope.errors import ConfigError, UnsupportedModelError

__all__ = [
    "ConvConnections",
    "connection_strengths",
    "conv_connections",
    "connections_into",
    "Connection",
    "UnitConnections",
    "unit_connections",
]

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

    json_skip: ClassVar[frozenset[str]] = frozenset({"top"})  # JSON: the top lists themselves
    json_extra: ClassVar[tuple[str, ...]] = ("top_inbound", "top_outbound")

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
    _check_top(top)
    graph = layer_graph(model, example=example)
    modules = dict(model.named_modules())
    convs = {name: modules[name].out_channels for name in graph.order if isinstance(modules.get(name), _CONV)}
    return tuple(
        ConvConnections(link.source, link.target, link.strength, link.signed, top, link.in_at)
        for link in _weight_links(graph, modules, convs)
    )


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


@dataclass(frozen=True)
class Connection:
    """A weight-level link from or to another unit."""

    layer: str | None  # unit layer on the other side; None for a model input or output
    unit: int  # unit, input feature or output index on the other side
    strength: float  # L2 norm of the kernel slice (conv) or |weight| (dense)
    signed: float  # sum of the kernel slice or the weight itself: + excites, - inhibits
    label: str | None = None  # name of an input feature or output ("a = 1", "logit of class 3")


@dataclass
class UnitConnections:
    """The strongest weight links into and out of each listed unit of one layer."""

    layer: str  # dotted layer name
    inbound: dict[int, list[Connection]] = field(default_factory=dict)  # unit -> strongest inputs
    outbound: dict[int, list[Connection]] = field(default_factory=dict)  # unit -> strongest outputs


def unit_connections(
    model: nn.Module,
    layers: Mapping[str, int],
    *,
    max_units: int | None = None,
    example: Tensor | None = None,
    top: int = 6,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] = (),
) -> dict[str, UnitConnections]:
    """The strongest weight links between layers of units, and to the model's inputs and outputs.

    Unit layer S links to unit layer T through the weights of conv/linear layer W when W
    reads S (through norms, pooling, adds, ...) and W's output makes up T; at a residual
    add T is linked to every summand's layer. A link's strength is the L2 norm of the
    kernel slice (conv) or |weight| (dense), its sign the slice's sum or the weight. The
    last unit layer is also linked to the outputs and the first to the input features,
    where a Linear reads them directly (the input features only for 2-d float inputs).

    Args:
        model: Any module.
        layers: Unit layer -> number of units, shallowest first (`name` or `name:k`, as
            in `mechscope.capture.names`).
        max_units: List links of the first `max_units` units of each layer only (None: all).
        example: A small batch of inputs: read for the input features, and for the
            dataflow when torch.fx cannot trace the model (see `layer_graph`).
        top: Strongest links kept per unit and direction.
        input_names: One label per input feature (default "input x1", "input x2", ...).
        output_names: Labels of the outputs, used when there is one per output
            ("logit of class NAME"); otherwise "output 3".

    Returns:
        Layer -> UnitConnections, for every layer of `layers`.

    Raises:
        ConfigError: `top` is not a positive integer.
        UnsupportedModelError: the dataflow cannot be read (see `layer_graph`).
        LayerNameError: a layer does not exist.

    Example:
        >>> links = unit_connections(cnn, {"relu1": 8, "relu2": 16}, example=x[:2])
        >>> links["relu2"].inbound[0][0].layer, links["relu2"].inbound[0][0].unit
        ('relu1', 5)
    """
    _check_top(top)
    names = list(layers)
    shown = {name: layers[name] if max_units is None else min(layers[name], max_units) for name in names}
    found = {name: UnitConnections(name) for name in names}
    graph = layer_graph(model, example=example, stops=names)
    modules = dict(model.named_modules())
    for link in _weight_links(graph, modules, layers):
        source, target = found[link.source], found[link.target]
        for row in range(link.strength.shape[0]):
            o = link.out_at + row
            if o >= shown[link.target]:
                break
            best = torch.argsort(link.strength[row], descending=True, stable=True)[:top].tolist()
            new = [Connection(link.source, i, float(link.strength[row, i]), float(link.signed[row, i])) for i in best]
            target.inbound[o] = _strongest(target.inbound.get(o, []) + new, top)
        for i in range(min(shown[link.source], link.strength.shape[1])):
            best = torch.argsort(link.strength[:, i], descending=True, stable=True)[:top].tolist()
            new = [Connection(link.target, link.out_at + r, float(link.strength[r, i]), float(link.signed[r, i]))
                   for r in best]
            source.outbound[i] = _strongest(source.outbound.get(i, []) + new, top)
    if names:
        last, first = names[-1], names[0]
        _output_links(graph, modules, found[last], names, layers[last], shown[last], top, output_names)
        _input_links(graph, modules, found[first], layers[first], shown[first], top, example, input_names)
    return found


@dataclass(frozen=True)
class _WeightLink:
    """Unit layer `source` feeding unit layer `target` through one conv/linear layer's weights."""

    source: str
    target: str
    strength: Tensor  # (target unit - out_at, source unit): kernel-slice L2 norm (conv) or |weight| (linear)
    signed: Tensor  # the same shape: kernel-slice sum or the weight itself
    out_at: int  # unit of `target` that the weight layer's output unit 0 makes
    in_at: int  # input unit of the weight layer that reads `source`'s unit 0


def _weight_links(
    graph: LayerGraph, modules: Mapping[str, nn.Module], widths: Mapping[str, int]
) -> Iterator[_WeightLink]:
    """Every path between two layers of `widths` (layer -> units) through one conv/linear layer, by target."""
    for target in widths:
        for made in graph.producers(target):
            layer = modules.get(made.source)
            if not isinstance(layer, WEIGHT_LAYERS):
                continue  # an identity path (a residual branch): no weights to show
            strength, signed = _strengths(layer)  # (out, in)
            out_at = made.aligned(strength.shape[0], widths[target])
            if out_at is None:
                continue
            for feed in graph.sources(made.source):
                width = widths.get(feed.source)
                in_at = None if width is None else feed.aligned(width, strength.shape[1])
                if width is None or in_at is None:
                    continue
                columns = slice(in_at, in_at + width)
                yield _WeightLink(feed.source, target, strength[:, columns], signed[:, columns], out_at, in_at)


def _strengths(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """(out, in) strength and signed weight: kernel-slice L2 norm and sum (conv), |w| and w (linear)."""
    if isinstance(layer, nn.Linear):
        weight = layer.weight.detach().cpu()
        return weight.abs(), weight
    return connection_strengths(layer)


def _strongest(connections: list[Connection], top: int) -> list[Connection]:
    return sorted(connections, key=lambda c: -c.strength)[:top]


def _output_links(
    graph: LayerGraph,
    modules: Mapping[str, nn.Module],
    last: UnitConnections,
    names: list[str],
    n_units: int,
    shown: int,
    top: int,
    output_names: Sequence[str],
) -> None:
    """The last unit layer's weights into the outputs: a Linear that reads it and that nothing reads."""
    made = {feed.source for name in names for feed in graph.producers(name)}
    read = {feed.source for feed in graph.feeds}
    for feed in graph.feeds:
        module = modules.get(feed.target)
        if feed.source != last.layer or not isinstance(module, nn.Linear) or feed.target in read | made:
            continue
        if feed.aligned(n_units, module.in_features) != 0 or module.in_features != n_units:
            continue
        weight = module.weight.detach().cpu()  # (output, unit)
        labels = tuple(output_names) if len(output_names) == weight.shape[0] else ()
        for i in range(shown):
            best = torch.argsort(weight[:, i].abs(), descending=True, stable=True)[:top].tolist()
            last.outbound[i] = [
                Connection(None, o, float(weight[o, i].abs()), float(weight[o, i]),
                           f"logit of class {labels[o]}" if o < len(labels) else f"output {o}")
                for o in best
            ]
        return


def _input_links(
    graph: LayerGraph,
    modules: Mapping[str, nn.Module],
    first: UnitConnections,
    n_units: int,
    shown: int,
    top: int,
    example: Tensor | None,
    input_names: Sequence[str] | None,
) -> None:
    """The first unit layer's weights from the input features: a Linear making it that reads the input."""
    if example is None or example.dim() != 2 or not example.is_floating_point():
        return
    n_features = int(example.shape[1])
    if input_names is not None and len(input_names) != n_features:
        raise ConfigError(
            f"got {len(input_names)} input_names for inputs of {n_features} features; pass one per feature."
        )
    labels = [f"input x{i + 1}" for i in range(n_features)] if input_names is None else list(input_names)
    for made in graph.producers(first.layer):
        module = modules.get(made.source)
        if not isinstance(module, nn.Linear) or graph.sources(made.source):
            continue
        if module.in_features != n_features or made.aligned(module.out_features, n_units) != 0:
            continue
        weight = module.weight.detach().cpu()  # (unit, feature)
        for u in range(shown):
            best = torch.argsort(weight[u].abs(), descending=True, stable=True)[:top].tolist()
            first.inbound[u] = [Connection(None, f, float(weight[u, f].abs()), float(weight[u, f]), labels[f])
                                for f in best]
        return


def _check_top(top: int) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer; got {top!r}.")


def _top(matrix: Tensor, k: int) -> Tensor:
    return torch.sort(matrix, dim=1, descending=True, stable=True).indices[:, : min(k, matrix.shape[1])]

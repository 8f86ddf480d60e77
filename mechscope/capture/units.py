"""Unit axes: which dimension of a layer's output holds its units, and which hold positions.

Every layer has one declared unit axis (STYLE.md section 11). Three kinds of output:

* conv maps (batch, channel, *spatial), e.g. (batch, channel, height, width): the units are
  the channels (axis 1) and the spatial axes (2, 3, ...) are positions. nn.Conv1d's
  (batch, channel, length) is a conv map too.
* sequences (batch, pos, d_model): the units are the features (the last axis) and the
  positions are axis 1 (tokens, time steps, ViT patches). RNN/LSTM/GRU outputs,
  transformer blocks, and Linear, LayerNorm or Embedding applied to 3-D inputs give these.
* vectors (batch, unit): the units are axis 1; there are no positions.

Analyses that speak of "unit u" (dataset examples, ablation, activation statistics, the
featurevis `channel` and `neuron` objectives, the report's unit pages) read the axes from
here, so ablating unit 2 of a GRU output zeroes feature 2 at every position, not token 2.

The kind is inferred from the number of dimensions and the module that produced the output:
2-D outputs are vectors; for more dimensions, the module (for a container: its last leaf
whose layout is known) decides: channels-first modules (ConvNd, BatchNorm, pooling, ...)
give conv maps, units-last modules (Linear, LayerNorm, Embedding, RNNs, attention,
transformer layers) give sequences. Elementwise layers (ReLU, GELU, Dropout) take the layout
of what feeds them (`layer_unit_axes` looks back through the model). When nothing decides,
3-D outputs are read as sequences and 4-D or larger ones as conv maps.

Override the inference with `axes=`: a `UnitAxes`, a kind ("conv", "sequence", "vector"),
or the index of the unit axis; functions over several layers also take a mapping from
layer name to any of these.

Example:
    >>> unit_axes(nn.GRU(8, 8, batch_first=True), (4, 5, 8))
    UnitAxes(unit=2, spatial=(1,), kind='sequence')
    >>> unit_axes(nn.Conv1d(3, 6, 3), (4, 6, 10))
    UnitAxes(unit=1, spatial=(2,), kind='conv')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from torch import Tensor, nn

from mechscope.capture.names import get_layer, split_layer
from mechscope.errors import ConfigError

__all__ = ["AxesSpec", "LayerAxes", "UnitAxes", "UnitKind", "layer_unit_axes", "unit_axes"]

UnitKind = Literal["conv", "sequence", "vector"]
"""The layout of a layer's output: conv map, sequence of feature vectors, or one vector."""

@dataclass(frozen=True)
class UnitAxes:
    """Where the units and the positions of a batched layer output (batch, ...) lie.

    Axes count from 0 = batch; every axis after the batch is the unit axis or a position axis.
    """

    unit: int  # axis holding the units: 1 for conv maps and vectors, the last one for sequences
    spatial: tuple[int, ...]  # position axes: (2, 3) for (batch, channel, height, width), (1,) for sequences
    kind: UnitKind  # "conv", "sequence" or "vector"

    def __post_init__(self) -> None:
        if self.kind not in get_args(UnitKind):
            raise ConfigError(f"UnitAxes kind must be one of {get_args(UnitKind)!r}; got {self.kind!r}.")
        axes = (self.unit, *self.spatial)
        if any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise ConfigError(f"UnitAxes axes must be integers; got unit={self.unit!r}, spatial={self.spatial!r}.")
        if sorted(axes) != list(range(1, len(axes) + 1)):
            raise ConfigError(
                f"UnitAxes needs the unit axis and the position axes to cover axes 1..n once each (axis 0 is the "
                f"batch); got unit={self.unit}, spatial={self.spatial}."
            )

    @property
    def ndim(self) -> int:
        """Dimensions of the batched output these axes describe."""
        return 2 + len(self.spatial)

    def n_units(self, shape: Sequence[int]) -> int:
        """Number of units of an output of batched `shape`."""
        self.check(shape)
        return int(shape[self.unit])

    def positions(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Sizes of the position axes of an output of batched `shape` (empty for vectors)."""
        self.check(shape)
        return tuple(int(shape[a]) for a in self.spatial)

    def units_first(self, tensor: Tensor) -> Tensor:
        """View `tensor` as (batch, unit, *positions): conv maps unchanged, sequences (batch, d_model, pos).

        A view: writing into it writes into `tensor`.
        """
        self.check(tuple(tensor.shape))
        return tensor.permute(0, self.unit, *self.spatial)

    def check(self, shape: Sequence[int], name: str | None = None) -> None:
        """Raise ConfigError unless `shape` has the dimensions these axes describe."""
        if len(shape) != self.ndim:
            where = f"Layer {name!r} output" if name else "An output"
            raise ConfigError(
                f"{where} has shape {tuple(shape)}, but its unit axes {self} describe {self.ndim}-D outputs; "
                "pass axes= matching the layer's output."
            )


AxesSpec = UnitAxes | UnitKind | int
"""An explicit unit layout: a UnitAxes, a kind, or the index of the unit axis."""

LayerAxes = AxesSpec | Mapping[str, AxesSpec] | None
"""`axes=` of a function over layers: one AxesSpec for all, one per layer name, or None to infer."""


def unit_axes(
    module: nn.Module | None, output_shape: Sequence[int], override: AxesSpec | None = None
) -> UnitAxes:
    """Declare the unit axis and the position axes of a layer output.

    Args:
        module: The module that produced the output; None infers from the shape alone.
        output_shape: Shape of the batched output (batch, ...).
        override: A UnitAxes, a kind ("conv", "sequence", "vector") or the index of the unit
            axis (negative counts from the end); None infers (see the module docstring).

    Returns:
        UnitAxes for an output of that shape.

    Raises:
        ConfigError: The output has no unit axis (fewer than 2 dimensions), or `override`
            does not fit its shape.

    Example:
        >>> unit_axes(nn.Linear(4, 6), (2, 5, 6))
        UnitAxes(unit=2, spatial=(1,), kind='sequence')
    """
    shape = tuple(int(d) for d in output_shape)
    ndim = len(shape)
    if ndim < 2:
        raise ConfigError(
            f"An output of shape {shape} has no unit axis; units need a batch axis and at least one more."
        )
    if override is not None:
        return _from_override(override, shape)
    if ndim == 2:
        return _of_kind("vector", ndim)
    layout = _layout(module, ndim) if module is not None else None
    if layout is None:
        layout = "units_last" if ndim == 3 else "channels_first"
    return _of_kind("sequence" if layout == "units_last" else "conv", ndim)


def layer_unit_axes(
    model: nn.Module,
    layer: str,
    output_shape: Sequence[int],
    axes: LayerAxes = None,
) -> UnitAxes:
    """Unit axes of `layer` in `model`, from `axes=` if given, else inferred in the model's context.

    An elementwise layer (ReLU, GELU, Dropout, ...) has no layout of its own: the leaf module
    registered before it decides (a ReLU after a Conv1d is a conv map, after a Linear on 3-D
    inputs a sequence).

    Args:
        model: Any module.
        layer: Dotted layer name, or `name:k` for the k-th call of a module.
        output_shape: Shape of the layer's batched output (batch, ...).
        axes: An override for every layer (UnitAxes, kind or unit axis), a mapping from layer
            name to an override (layers left out are inferred), or None.

    Raises:
        LayerNameError: `layer` is not a submodule of `model`.
        ConfigError: The override does not fit the output shape.

    Example:
        >>> layer_unit_axes(token_model, "gru", (4, 5, 8))
        UnitAxes(unit=2, spatial=(1,), kind='sequence')
    """
    base, _ = split_layer(model, layer)  # `name:k`, the k-th call of a module, has the module's layout
    module = get_layer(model, base)
    override = (axes.get(layer, axes.get(base)) if isinstance(axes, Mapping) else axes)
    if override is not None:
        return unit_axes(module, output_shape, override)
    if _layout(module, len(output_shape)) is None and not list(module.children()):
        module = _feeding(model, base, len(output_shape)) or module
    return unit_axes(module, output_shape)


# -- private helpers ----------------------------------------------------------------------

_Layout = Literal["channels_first", "units_last"]

# Modules whose output keeps channels on axis 1 (conv maps).
_CHANNELS_FIRST: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Upsample,
    nn.PixelShuffle,
)
# Modules that act on the last axis: their (batch, ..., features) outputs hold units last.
_UNITS_LAST: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.LayerNorm,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.RNNBase,
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.Transformer,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def _layout(module: nn.Module, ndim: int) -> _Layout | None:
    """The layout of a module's `ndim`-D output, or None when the module does not decide it.

    A container takes the layout of its last leaf (registration order) that decides one.
    """
    own = _own_layout(module, ndim)
    if own is not None:
        return own
    for leaf in reversed([m for m in module.modules() if m is not module and not list(m.children())]):
        found = _own_layout(leaf, ndim)
        if found is not None:
            return found
    return None


def _own_layout(module: nn.Module, ndim: int) -> _Layout | None:
    if isinstance(module, _UNITS_LAST):
        return "units_last"
    if isinstance(module, _CHANNELS_FIRST):
        # A Conv2d inside a block whose output is 3-D (ViT's patch embedding flattens its maps
        # into tokens) does not give that output's layout.
        dims = _spatial_dims(module)
        return "channels_first" if dims is None or dims + 2 == ndim else None
    return None


def _spatial_dims(module: nn.Module) -> int | None:
    """Spatial axes a channels-first module works on (Conv2d: 2), None when any number fits."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return len(module.kernel_size)
    for cls in type(module).__mro__:
        match = re.search(r"([123])d$", cls.__name__)
        if match:
            return int(match.group(1))
    return None


def _feeding(model: nn.Module, layer: str, ndim: int) -> nn.Module | None:
    """The last leaf registered before `layer` whose layout of an `ndim`-D output is known, if any."""
    found: nn.Module | None = None
    for name, leaf in model.named_modules():
        if name == layer:
            return found
        if name and not list(leaf.children()) and _own_layout(leaf, ndim) is not None:
            found = leaf
    return found


def _of_kind(kind: UnitKind, ndim: int) -> UnitAxes:
    if kind == "vector":
        if ndim != 2:
            raise ConfigError(
                f"A 'vector' layer has outputs (batch, unit); this one has {ndim} dimensions. "
                "Use 'conv' (units on axis 1) or 'sequence' (units last)."
            )
        return UnitAxes(1, (), "vector")
    if ndim == 2:
        return UnitAxes(1, (), "vector")
    if kind == "conv":
        return UnitAxes(1, tuple(range(2, ndim)), "conv")
    return UnitAxes(ndim - 1, tuple(range(1, ndim - 1)), "sequence")


def _from_override(override: AxesSpec, shape: tuple[int, ...]) -> UnitAxes:
    ndim = len(shape)
    if isinstance(override, UnitAxes):
        override.check(shape)
        return override
    if isinstance(override, str):
        if override not in get_args(UnitKind):
            raise ConfigError(
                f"axes must be a UnitAxes, one of {get_args(UnitKind)!r} or a unit axis index; got {override!r}."
            )
        return _of_kind(override, ndim)
    if isinstance(override, bool) or not isinstance(override, int):
        raise ConfigError(
            f"axes must be a UnitAxes, one of {get_args(UnitKind)!r} or a unit axis index; got {override!r}."
        )
    unit = override + ndim if override < 0 else override
    if not 1 <= unit < ndim:
        raise ConfigError(
            f"unit axis {override} is not an axis after the batch of an output of shape {shape}; "
            f"use 1..{ndim - 1} (or -1 for the last)."
        )
    spatial = tuple(a for a in range(1, ndim) if a != unit)
    kind: UnitKind = "vector" if ndim == 2 else ("sequence" if unit == ndim - 1 else "conv")
    return UnitAxes(unit, spatial, kind)

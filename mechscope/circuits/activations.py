"""Intermediate activations: every channel's map for one input, and statistics by depth.

Seed 004 ("Visualizing Intermediate Activations") claims that deeper activations are
increasingly sparse while early activations are larger. `depth_statistics` measures mean
activation, the fraction of zeros and the number of active units per input for each
layer over a dataset, and says whether the claim holds for the model at hand.

Maps are laid out units first along each layer's unit axis (`mechscope.capture.units`):
(channel, height, width) for conv maps, (d_model, pos) for sequences (feature f's row holds
its value at every token), (unit,) for dense layers. Depth statistics count every scalar
activation (unit x position), so they do not depend on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import UnitAxes, capture
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import LayerSpec, resolve_layers
from mechscope.capture.units import LayerAxes, layer_unit_axes
from mechscope.circuits.layers import check_inputs, depth_layers
from mechscope.errors import ConfigError, DataError

__all__ = ["ActivationMaps", "LayerStatistics", "DepthStatistics", "activation_maps", "depth_statistics"]


@dataclass(frozen=True)
class ActivationMaps:
    """Every channel's activation of several layers for one input."""

    image: Tensor  # the input, without the batch dimension
    maps: dict[str, Tensor]  # layer -> (channel, height, width) conv, (d_model, pos) sequence, (unit,) dense
    unit_axes: dict[str, UnitAxes] = field(default_factory=dict)  # layer -> axes of its (batch, ...) output

    def __json__(self) -> dict[str, Any]:
        """Shape, per-unit maximum and mean of each layer (the maps themselves are for figures)."""
        out: dict[str, Any] = {}
        for name, value in self.maps.items():
            flat = value.reshape(value.shape[0], -1) if value.dim() > 1 else value[:, None]
            out[name] = {"shape": tuple(value.shape), "max": flat.max(dim=1).values, "mean": flat.mean(dim=1)}
        return {"layers": out}


def activation_maps(
    model: nn.Module, x: Tensor, layers: LayerSpec | None = None, *, axes: LayerAxes = None
) -> ActivationMaps:
    """Record every unit's activation map of `layers` for one input.

    Args:
        model: Any module.
        x: One input as a batch of one, shape (1, ...).
        layers: Layer names; None takes the activation layer of every conv module.
        axes: Unit axes: None infers them per layer (`mechscope.capture.units.layer_unit_axes`);
            a UnitAxes, kind or unit axis index for all layers, or a mapping by layer name.

    Returns:
        ActivationMaps with `maps[layer]` of shape (channel, height, width), (d_model, pos)
        for a sequence, or (unit,).

    Raises:
        DataError: `x` is not a batch of exactly one input.

    Example:
        >>> grid = activation_maps(model, data.x_test[:1])
        >>> grid.maps["relu1"].shape
        torch.Size([8, 28, 28])
    """
    check_inputs(x, what="x")
    if x.shape[0] != 1:
        raise DataError(f"activation_maps takes one input as a batch of one, shape (1, ...); got {tuple(x.shape)}. "
                        "Select one with x[i : i + 1].")
    names = depth_layers(model) if layers is None else resolve_layers(model, layers)
    with eval_mode(model), torch.no_grad(), capture(model, names, check_finite=False) as store:
        model(x.to(model_device(model)))
    layouts = {name: layer_unit_axes(model, name, store.act(name).shape, axes) for name in names}
    maps = {name: layouts[name].units_first(store.act(name))[0].contiguous().cpu() for name in names}
    return ActivationMaps(image=x[0].detach().cpu(), maps=maps, unit_axes=layouts)


@dataclass(frozen=True)
class LayerStatistics:
    """How large and how sparse one layer's activations are over a dataset."""

    json_extra: ClassVar[tuple[str, ...]] = ("active_fraction",)

    layer: str  # dotted layer name
    n_units: int  # scalar activations per input (channel x height x width, pos x d_model, ...)
    mean_activation: float  # mean over every unit and input
    mean_active_value: float  # mean over the non-zero activations only
    fraction_zeros: float  # share of activations that are zero (|a| <= tol)
    active_units: float  # non-zero activations per input, averaged over inputs

    @property
    def active_fraction(self) -> float:
        """Share of the layer's units active on an average input."""
        return self.active_units / self.n_units


@dataclass(frozen=True)
class DepthStatistics:
    """Activation statistics of layers ordered by depth, and seed 004's claim checked on them."""

    json_extra: ClassVar[tuple[str, ...]] = ("sparser_deeper", "larger_early", "claim_holds")

    layers: tuple[LayerStatistics, ...]  # shallowest first
    n_inputs: int  # inputs the statistics were measured on

    @property
    def sparser_deeper(self) -> bool:
        """True when the fraction of zeros never decreases from one layer to the next."""
        zeros = [s.fraction_zeros for s in self.layers]
        return all(b >= a for a, b in zip(zeros, zeros[1:]))

    @property
    def larger_early(self) -> bool:
        """True when the mean activation never increases from one layer to the next."""
        means = [s.mean_activation for s in self.layers]
        return all(b <= a for a, b in zip(means, means[1:]))

    @property
    def claim_holds(self) -> bool:
        """Seed 004's claim: deeper activations are sparser and early ones larger."""
        return self.sparser_deeper and self.larger_early

    def verdict(self) -> str:
        """One sentence on whether the claim holds, with the numbers behind it."""
        zeros = " -> ".join(f"{s.fraction_zeros:.2f}" for s in self.layers)
        means = " -> ".join(f"{s.mean_activation:.3g}" for s in self.layers)
        parts = [
            f"fraction of zeros {zeros} ({'rises' if self.sparser_deeper else 'does not rise'} with depth)",
            f"mean activation {means} ({'falls' if self.larger_early else 'does not fall'} with depth)",
        ]
        status = "holds" if self.claim_holds else ("partly holds" if self.sparser_deeper or self.larger_early
                                                   else "does not hold")
        return f"'deeper activations are sparser, early ones larger' {status}: " + "; ".join(parts) + "."


def depth_statistics(
    model: nn.Module,
    inputs: Tensor,
    layers: LayerSpec | None = None,
    *,
    batch_size: int = 256,
    tol: float = 0.0,
    progress: bool = True,
) -> DepthStatistics:
    """Measure mean activation, fraction of zeros and active units per input, layer by layer.

    One streaming pass: memory holds one batch of activations, not the dataset's.

    Args:
        model: Any module.
        inputs: Dataset inputs (batch, ...).
        layers: Layers in depth order; None takes the activation layer of every conv module.
        batch_size: Inputs per forward pass.
        tol: An activation counts as zero when its magnitude is at most `tol`.
        progress: Show a progress bar on a terminal.

    Returns:
        DepthStatistics; `claim_holds` tells whether seed 004's claim holds here.

    Example:
        >>> stats = depth_statistics(model, data.x_test)
        >>> stats.claim_holds, stats.verdict()
    """
    check_inputs(inputs)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}.")
    if tol < 0:
        raise ConfigError(f"tol must be >= 0; got {tol}.")
    names = depth_layers(model) if layers is None else resolve_layers(model, layers)
    # Per layer: sum, sum of active, active count; on the CPU, where each batch's totals join them.
    sums = {name: torch.zeros(3, dtype=torch.float64, device="cpu") for name in names}
    units: dict[str, int] = {}
    device = model_device(model)
    chunks = inputs.split(batch_size)
    with eval_mode(model), torch.no_grad():
        for batch in tqdm(chunks, desc="depth statistics", leave=False, disable=None if progress else True):
            with capture(model, names, check_finite=False) as store:
                model(batch.to(device))
            for name in names:
                act = store.act(name).reshape(batch.shape[0], -1).double()
                active = act.abs() > tol
                units[name] = act.shape[1]
                sums[name] += torch.stack([act.sum(), act[active].sum(), active.sum().double()]).cpu()
    n = inputs.shape[0]
    stats = []
    for name in names:
        total, active_sum, active_count = (float(v) for v in sums[name])
        size = n * units[name]
        stats.append(
            LayerStatistics(
                layer=name,
                n_units=units[name],
                mean_activation=total / size,
                mean_active_value=active_sum / active_count if active_count else 0.0,
                fraction_zeros=1.0 - active_count / size,
                active_units=active_count / n,
            )
        )
    return DepthStatistics(layers=tuple(stats), n_inputs=n)

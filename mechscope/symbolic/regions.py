"""Affine regions of a piecewise-linear network on a dataset, each verified against the network.

Every input gets an activation pattern (which ReLU-like units are active). On all inputs
that share a pattern the network is one exact affine map `A x + b`, obtained by composing
the weight matrices with the pattern's units masked. `extract_regions` computes every
pattern in one batched float64 pass, groups points with `torch.unique`, composes each
pattern's map, merges patterns whose maps coincide, sorts regions by coverage and checks
every map against the network's own outputs on the points it covers.

Example:
    >>> regions = extract_regions(model, data.x_test)
    >>> regions.affine_on_data, regions.regions[0].coverage, regions.max_abs_error
    (True, 0.9998, 2.1e-07)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.modes import eval_mode, model_device
from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError
from mechscope.symbolic.chain import AffineStep, PiecewiseLinearChain, trace_chain

__all__ = ["AffineRegion", "RegionMap", "extract_regions", "network_outputs"]

_MAP_BYTES = 256 * 2**20  # memory budget for composing the maps of a chunk of patterns


@dataclass(frozen=True)
class AffineRegion:
    """Points where the network is one affine map, with how much data it covers and how well it fits.

    Attributes:
        coefficients: A, shape (n_outputs, n_features) float64.
        intercept: b, shape (n_outputs,) float64.
        coverage: Fraction of the data in this region.
        n_points: Number of data points in this region.
        max_abs_error: Largest |A x + b - network(x)| over those points.
        patterns: Activation patterns merged into this region, as bit strings ("1" = active),
            most frequent first; units in `RegionMap.unit_names` order.
    """

    coefficients: Tensor
    intercept: Tensor
    coverage: float
    n_points: int
    max_abs_error: float
    patterns: tuple[str, ...]

    def predict(self, x: Tensor) -> Tensor:
        """A x + b for inputs (batch, n_features) -> (batch, n_outputs) float64."""
        return x.reshape(x.shape[0], -1).to(torch.float64) @ self.coefficients.T + self.intercept

    def __json__(self) -> dict[str, Any]:
        """Map, coverage and main pattern; a single output gives flat `coefficients` and a float `intercept`."""
        single = self.coefficients.shape[0] == 1
        return {
            "coverage": self.coverage,
            "n_points": self.n_points,
            "coefficients": self.coefficients[0] if single else self.coefficients,
            "intercept": self.intercept[0] if single else self.intercept,
            "max_abs_error": self.max_abs_error,
            "pattern": self.patterns[0],
            "n_patterns": len(self.patterns),
        }


@dataclass(frozen=True)
class RegionMap:
    """Every affine region the data visits, sorted by coverage (largest first).

    Attributes:
        regions: The regions; patterns with the same affine map are merged.
        region_index: Position in `regions` of each data point, shape (batch,) int64.
        network_output: The network's own outputs, shape (batch, n_outputs) float64.
        formula_output: Each point's region formula evaluated at it, shape (batch, n_outputs) float64.
        unit_active_fraction: Fraction of the data on which each unit is active, shape (n_units,).
        unit_names: "layer:index" of each activation unit.
        n_patterns: Distinct activation patterns before merging.
        affine_threshold: Coverage at which the network counts as affine on the data.
    """

    regions: tuple[AffineRegion, ...]
    region_index: Tensor
    network_output: Tensor
    formula_output: Tensor
    unit_active_fraction: Tensor
    unit_names: tuple[str, ...]
    n_patterns: int
    affine_threshold: float

    @property
    def n_points(self) -> int:
        """Number of data points analysed."""
        return int(self.region_index.shape[0])

    @property
    def affine_on_data(self) -> bool:
        """True when one region covers at least `affine_threshold` of the data."""
        return self.regions[0].coverage >= self.affine_threshold

    @property
    def dominant(self) -> AffineRegion:
        """The region covering the most data."""
        return self.regions[0]

    @property
    def max_abs_error(self) -> float:
        """Largest error of any region's formula on the points it covers."""
        return max(region.max_abs_error for region in self.regions)

    def __json__(self) -> dict[str, Any]:
        """Counts, errors and regions; the per-point tensors are left out."""
        return {
            "n_points": self.n_points,
            "n_patterns": self.n_patterns,
            "n_regions": len(self.regions),
            "affine_on_data": self.affine_on_data,
            "affine_threshold": self.affine_threshold,
            "max_abs_error": self.max_abs_error,
            "unit_active_fraction": dict(zip(self.unit_names, self.unit_active_fraction.tolist())),
            "regions": self.regions,
        }


def extract_regions(
    model: nn.Module,
    x: Tensor,
    *,
    affine_threshold: float = 0.99,
    merge_tolerance: float = 1e-9,
    batch_size: int = 65_536,
) -> RegionMap:
    """Enumerate the activation patterns the data visits and give each its exact affine map.

    Args:
        model: A piecewise-linear network (see `trace_chain` for the layers it may hold).
        x: Data points (batch, ...) in the model's input space.
        affine_threshold: Coverage of the largest region from which the network counts
            as affine on the data.
        merge_tolerance: Patterns whose maps agree to this fraction of the largest map
            entry are merged into one region.
        batch_size: Points per forward pass (bounds memory, not the result).

    Returns:
        RegionMap with regions sorted by coverage; every region's `max_abs_error` is
        measured against `model(x)` itself.

    Raises:
        UnsupportedModelError: The model is not a chain of piecewise-linear layers.
        DataError: `x` is empty, holds NaN/inf or does not fit the model, or the model's
            weights hold NaN/inf.
        ConfigError: A threshold or tolerance is out of range.
    """
    _check_options(affine_threshold, merge_tolerance, x)
    check_finite(x, "x")
    x = x.detach().cpu()  # the chain's maps are composed on the CPU; network_outputs moves batches to the model
    chain = trace_chain(model, x[:8])
    network = network_outputs(model, x, chain.n_outputs, batch_size=batch_size)
    bits = torch.cat([chain.forward(x[i : i + batch_size])[1] for i in range(0, x.shape[0], batch_size)])
    patterns, inverse, counts = _unique_patterns(bits)
    maps_a, maps_b = _compose(chain, patterns)
    group, n_groups = _merge(maps_a, maps_b, merge_tolerance)
    ranking = _rank_regions(group, n_groups, inverse, counts)
    representative = ranking.by_region[ranking.starts]  # each region's most frequent pattern
    a = maps_a[representative]  # (region, n_outputs, n_features)
    b = maps_b[representative]  # (region, n_outputs)
    formula = _formula_outputs(a, b, ranking.region_index, x.reshape(x.shape[0], -1).to(torch.float64), batch_size)
    point_error = (formula - network).abs().amax(dim=1)
    region_error = torch.zeros(n_groups, dtype=torch.float64, device=point_error.device).scatter_reduce(
        0, ranking.region_index, point_error, reduce="amax", include_self=True
    )
    return RegionMap(
        regions=_regions(a, b, ranking, region_error, _bit_strings(patterns), n=x.shape[0]),
        region_index=ranking.region_index,
        network_output=network,
        formula_output=formula,
        unit_active_fraction=bits.to(torch.float64).mean(dim=0),
        unit_names=chain.unit_names,
        n_patterns=int(patterns.shape[0]),
        affine_threshold=float(affine_threshold),
    )


def network_outputs(model: nn.Module, x: Tensor, n_outputs: int, *, batch_size: int = 65_536) -> Tensor:
    """The model's own outputs in eval mode, as (batch, n_outputs) float64 on the CPU."""
    param = next(model.parameters(), None)
    device = model_device(model)
    dtype = param.dtype if param is not None and param.is_floating_point() else x.dtype
    with eval_mode(model), torch.no_grad():
        parts = [
            model(x[i : i + batch_size].to(device=device, dtype=dtype if x.is_floating_point() else x.dtype))
            for i in range(0, x.shape[0], batch_size)
        ]
    out = torch.cat([p.reshape(p.shape[0], -1) for p in parts]).to(torch.float64).cpu()
    if out.shape[1] != n_outputs:
        raise DataError(f"the model returned {out.shape[1]} values per example, expected {n_outputs}.")
    return out


@dataclass(frozen=True)
class _Ranking:
    """Regions numbered by the points they cover (largest first), with their points and patterns."""

    region_index: Tensor  # (batch,) region of each point
    n_points: Tensor  # (region,) points each region covers
    by_region: Tensor  # (n_patterns,) pattern indices grouped by region, most frequent first within each
    sizes: Tensor  # (region,) patterns each region merges

    @property
    def starts(self) -> Tensor:
        """(region,) where each region's patterns begin in `by_region`."""
        return torch.cumsum(self.sizes, 0) - self.sizes


def _check_options(affine_threshold: float, merge_tolerance: float, x: Any) -> None:
    """Raise ConfigError for a threshold or tolerance out of range, DataError unless x is a non-empty batch."""
    if not 0.0 < affine_threshold <= 1.0:
        raise ConfigError(f"affine_threshold must be in (0, 1], got {affine_threshold!r}; e.g. 0.99.")
    if not merge_tolerance >= 0.0:
        raise ConfigError(f"merge_tolerance must be >= 0, got {merge_tolerance!r}.")
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DataError(f"x must be a non-empty batch of inputs (batch, n_features), got {shape}.")


def _unique_patterns(bits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(distinct patterns, pattern of each point, points per pattern) of the points' activation bits."""
    if bits.shape[1] == 0:  # no activation units: the whole network is one affine map
        patterns = bits[:1]
        inverse = torch.zeros(bits.shape[0], dtype=torch.long, device=bits.device)
        counts = torch.tensor([bits.shape[0]], device=bits.device)
        return patterns, inverse, counts
    patterns, inverse, counts = torch.unique(bits, dim=0, return_inverse=True, return_counts=True)
    return patterns, inverse, counts


def _rank_regions(group: Tensor, n_groups: int, inverse: Tensor, counts: Tensor) -> _Ranking:
    """Number the merged groups by coverage (stable) and list each one's patterns, most frequent first.

    Args:
        group: (n_patterns,) merged group of each pattern.
        n_groups: Number of groups.
        inverse: (batch,) pattern of each point.
        counts: (n_patterns,) points per pattern.
    """
    region_of_point = group[inverse]
    region_counts = torch.bincount(region_of_point, minlength=n_groups)
    order = torch.argsort(region_counts, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n_groups, device=order.device)
    pattern_rank = rank[group]  # (n_patterns,) region of each pattern
    by_count = torch.argsort(counts, descending=True, stable=True)
    by_region = by_count[torch.argsort(pattern_rank[by_count], stable=True)]  # grouped by region, frequent first
    sizes = torch.bincount(pattern_rank, minlength=n_groups)
    return _Ranking(rank[region_of_point], region_counts[order], by_region, sizes)


def _formula_outputs(a: Tensor, b: Tensor, region_index: Tensor, flat: Tensor, batch_size: int) -> Tensor:
    """Each point's region map applied to it, `a[r] x + b[r]`: (batch, n_outputs) float64, in batches."""
    return torch.cat(
        [
            torch.einsum("bon,bn->bo", a[region_index[i : i + batch_size]], flat[i : i + batch_size])
            + b[region_index[i : i + batch_size]]
            for i in range(0, flat.shape[0], batch_size)
        ]
    )


def _regions(
    a: Tensor, b: Tensor, ranking: _Ranking, region_error: Tensor, bit_strings: list[str], *, n: int
) -> tuple[AffineRegion, ...]:
    """One AffineRegion per region, in rank order, from its map, coverage of `n` points, error and patterns."""
    order_list, starts = ranking.by_region.tolist(), ranking.starts.tolist()
    n_points, errors = ranking.n_points.tolist(), region_error.tolist()
    return tuple(
        AffineRegion(
            coefficients=coefficients,
            intercept=intercept,
            coverage=n_points[r] / n,
            n_points=n_points[r],
            max_abs_error=errors[r],
            patterns=tuple(bit_strings[p] for p in order_list[starts[r] : starts[r] + n_points_patterns]),
        )
        for r, (coefficients, intercept, n_points_patterns) in enumerate(
            zip(a.unbind(0), b.unbind(0), ranking.sizes.tolist())
        )
    )


def _compose(chain: PiecewiseLinearChain, patterns: Tensor) -> tuple[Tensor, Tensor]:
    """Affine maps of all patterns, composed in chunks that fit the memory budget."""
    widths = [s.weight.shape[0] for s in chain.steps if isinstance(s, AffineStep)] + [chain.n_features]
    per_pattern = 8 * max(widths) * chain.n_features * 3
    chunk = max(1, _MAP_BYTES // max(per_pattern, 1))
    parts = [chain.affine_maps(patterns[i : i + chunk]) for i in range(0, patterns.shape[0], chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _merge(maps_a: Tensor, maps_b: Tensor, tolerance: float) -> tuple[Tensor, int]:
    """Group patterns whose maps agree to `tolerance` of the largest entry; return (group id, n_groups)."""
    flat = torch.cat([maps_a.reshape(maps_a.shape[0], -1), maps_b], dim=1)
    if tolerance == 0.0:
        _, group = torch.unique(flat, dim=0, return_inverse=True)
    else:
        scale = float(flat.abs().max()) if flat.numel() else 0.0
        step = tolerance * scale if scale > 0 else 1.0
        _, group = torch.unique(torch.round(flat / step).to(torch.int64), dim=0, return_inverse=True)
    return group, int(group.max()) + 1 if group.numel() else 0


def _bit_strings(patterns: Tensor) -> list[str]:
    """Each pattern row as a string of "0"/"1" characters."""
    chars = patterns.to(torch.uint8).numpy() + ord("0")  # (n_patterns, n_units)
    return [row.tobytes().decode("ascii") for row in chars]

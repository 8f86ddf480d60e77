"""Per-neuron frequency clusters: how much of each neuron one frequency explains.

Two inputs are understood:

* Activation grids (p, p, unit): a neuron's activation on every pair (a, b). Following
  Nanda et al. (2023), the share of frequency k is the energy of the 2D Fourier terms
  whose frequencies in a and in b are each 0 or k (cos(w a), sin(w b), cos(w a) sin(w b),
  ...; w = 2 pi k / p), divided by the neuron's variance (all terms but the constant).
  Neurons with a share >= 0.85 for one k (the published threshold) form that k's cluster.
* Weight matrices (p, unit) or (n * p, unit): a neuron's weights over residues (e.g. the
  first layer of a one-hot network, transposed). The share of k is the energy of the
  cos/sin terms of frequency k over the non-constant energy, summed over blocks.

Example:
    >>> acts = neuron_table(model, "act")           # (p, p, unit)
    >>> clusters = neuron_frequencies(acts)
    >>> clusters.clusters()                          # {frequency: [neuron, ...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError
from mechscope.fourier.basis import basis_frequencies, fourier_basis, residues_last

__all__ = ["NeuronFrequencies", "neuron_frequencies", "PUBLISHED_THRESHOLD"]

PUBLISHED_THRESHOLD = 0.85
"""Share of variance above which Nanda et al. (2023) assign a neuron to a frequency."""


@dataclass(frozen=True)
class NeuronFrequencies:
    """Frequency shares of every neuron.

    Attributes:
        modulus: p.
        shares: (unit, p//2 + 1) share of each neuron's variance per frequency; column 0 is
            unused (0) so that column k is frequency k. Rows of dead neurons are all 0.
        threshold: Share a neuron's best frequency needs for it to join that cluster.
        kind: "activations" (2D, Nanda's definition) or "weights" (1D).
    """

    modulus: int
    shares: Tensor
    threshold: float
    kind: str

    @property
    def n_units(self) -> int:
        """Number of neurons."""
        return int(self.shares.shape[0])

    @property
    def frequency(self) -> list[int]:
        """Best frequency of each neuron (0 for a neuron with no variance)."""
        top = self.shares.max(dim=1)
        return [int(k) if v > 0 else 0 for k, v in zip(top.indices.tolist(), top.values.tolist())]

    @property
    def best_share(self) -> list[float]:
        """Share of each neuron's variance explained by its best frequency."""
        return [float(v) for v in self.shares.max(dim=1).values.tolist()]

    def clusters(self) -> dict[int, list[int]]:
        """Frequency -> neurons whose best share reaches `threshold`, frequencies ascending."""
        out: dict[int, list[int]] = {}
        for unit, (k, share) in enumerate(zip(self.frequency, self.best_share)):
            if k > 0 and share >= self.threshold:
                out.setdefault(k, []).append(unit)
        return dict(sorted(out.items()))

    @property
    def clustered_fraction(self) -> float:
        """Fraction of neurons that belong to some cluster."""
        n = sum(len(units) for units in self.clusters().values())
        return n / self.n_units if self.n_units else 0.0

    def __json__(self) -> dict[str, Any]:
        """Clusters, cluster sizes and per-neuron best frequency and share, instead of the share table."""
        clusters = self.clusters()
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "clusters": clusters,
            "cluster_sizes": {k: len(v) for k, v in clusters.items()},
            "clustered_fraction": self.clustered_fraction,
            "frequency": self.frequency,
            "best_share": self.best_share,
        }


def neuron_frequencies(
    x: Tensor, *, threshold: float = PUBLISHED_THRESHOLD, modulus: int | None = None
) -> NeuronFrequencies:
    """Measure how much of each neuron's variance each frequency explains.

    Args:
        x: Activation grid (p, p, unit), or weights (p, unit) / (n * p, unit) with the
            residue axis first (transpose an nn.Linear weight first).
        threshold: Cluster threshold on the best frequency's share (0.85 as published).
        modulus: p for weights whose first axis holds n concatenated blocks of p.

    Returns:
        NeuronFrequencies.

    Raises:
        DataError: For other shapes or non-finite values.
        ConfigError: If `threshold` is not in (0, 1].
    """
    if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}; the published value is 0.85.")
    if not isinstance(x, Tensor):
        raise DataError(f"expected a torch.Tensor, got {type(x).__name__}.")
    values = check_finite(x.detach().to(torch.float64), "the tensor", fix="Neuron shares need finite numbers")
    if values.dim() == 3:
        if values.shape[0] != values.shape[1]:
            raise DataError(f"an activation grid must be (p, p, unit), got {tuple(x.shape)}.")
        shares, p = _grid_shares(values)
        kind = "activations"
    elif values.dim() == 2:
        shares, p = _weight_shares(values, modulus)
        kind = "weights"
    else:
        raise DataError(
            f"expected activations (p, p, unit) or weights (p, unit), got shape {tuple(x.shape)}; "
            "build activations with mechscope.fourier.tables.neuron_table(model, layer)."
        )
    return NeuronFrequencies(modulus=p, shares=shares, threshold=float(threshold), kind=kind)


def _grid_shares(grid: Tensor) -> tuple[Tensor, int]:
    p = grid.shape[0]
    basis = fourier_basis(p, device=grid.device)
    coeffs = torch.einsum("ia,abu,jb->uij", basis, grid, basis)  # (unit, p, p)
    energy = coeffs**2
    variance = energy.sum(dim=(1, 2)) - energy[:, 0, 0]  # (unit,)
    freqs = basis_frequencies(p).to(grid.device)
    n = p // 2 + 1
    shares = torch.zeros(grid.shape[2], n, dtype=torch.float64, device=grid.device)
    for k in range(1, n):
        in_k = (freqs == 0) | (freqs == k)
        mask = in_k[:, None] & in_k[None, :]
        mask[0, 0] = False
        shares[:, k] = (energy * mask).sum(dim=(1, 2))
    return _normalise(shares, variance), p


def _weight_shares(weights: Tensor, modulus: int | None) -> tuple[Tensor, int]:
    blocks = residues_last(weights, axis=0, modulus=modulus)  # (unit, n_blocks, p)
    p = blocks.shape[-1]
    basis = fourier_basis(p, device=weights.device)
    energy = ((blocks @ basis.T) ** 2).sum(dim=1)  # (unit, p) per basis row
    freqs = basis_frequencies(p).to(weights.device)
    n = p // 2 + 1
    shares = torch.zeros(energy.shape[0], n, dtype=torch.float64, device=weights.device)
    shares.index_add_(1, freqs, energy)
    variance = shares[:, 1:].sum(dim=1)
    shares[:, 0] = 0.0
    return _normalise(shares, variance), p


def _normalise(shares: Tensor, variance: Tensor) -> Tensor:
    # Dead or constant neurons (zero variance) get all-zero rows instead of NaN.
    scale = torch.where(variance > 1e-12 * variance.max().clamp_min(1e-300), variance, torch.inf)
    return (shares / scale[:, None]).cpu()

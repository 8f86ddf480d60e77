"""Energy per frequency of embeddings, unembeddings and logit tables over Z_p.

A grokked modular-addition network uses only a handful of "key" frequencies
(Nanda et al. 2023): its embedding, unembedding and logits are sparse in the Fourier
basis of Z_p. `frequency_spectrum` measures that on any tensor with a residue axis;
`logit_spectrum_2d` takes the 2D transform of a logit table over the (a, b) grid.

Example:
    >>> model = gromov_grokking_mlp(31, [3, 7, 12], width=768)
    >>> frequency_spectrum(model.embed.weight).key_frequencies(share=0.9)   # (p, d_embed), residues on axis 0
    [3, 7, 12]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError
from mechscope.fourier.basis import basis_frequencies, basis_labels, fourier_basis, residues_last

__all__ = ["FrequencySpectrum", "LogitSpectrum2D", "frequency_spectrum", "key_frequencies", "logit_spectrum_2d"]


@dataclass(frozen=True)
class FrequencySpectrum:
    """Energy (sum of squared Fourier coefficients) of a tensor at each frequency of Z_p.

    Attributes:
        modulus: p.
        energy: Energy at frequency k = 0 .. p//2 (index 0 is the constant term).
    """

    modulus: int
    energy: tuple[float, ...]

    @property
    def total(self) -> float:
        """Energy of all non-constant frequencies."""
        return float(sum(self.energy[1:]))

    @property
    def constant_share(self) -> float:
        """Share of the whole energy (constant included) held by the constant term."""
        whole = float(sum(self.energy))
        return self.energy[0] / whole if whole > 0 else 0.0

    @property
    def share(self) -> dict[int, float]:
        """Frequency k (1..p//2) -> its share of the non-constant energy."""
        total = self.total
        return {k: (e / total if total > 0 else 0.0) for k, e in enumerate(self.energy) if k > 0}

    def ranked(self) -> list[int]:
        """Non-constant frequencies, most energetic first (ties: lower frequency first)."""
        share = self.share
        return sorted(share, key=lambda k: (-share[k], k))

    def key_frequencies(self, share: float = 0.9) -> list[int]:
        """Return the smallest set of frequencies that holds at least `share` of the energy, sorted.

        Raises:
            ConfigError: If `share` is not in (0, 1].
        """
        _check_share(share)
        shares = self.share
        chosen: list[int] = []
        held = 0.0
        for k in self.ranked():
            if held >= share - 1e-12 or shares[k] <= 0.0:
                break
            chosen.append(k)
            held += shares[k]
        return sorted(chosen)

    def top_k_energy(self, k_max: int | None = None) -> dict[int, float]:
        """Return k -> cumulative share of the k most energetic frequencies, k = 1..k_max."""
        shares = self.share
        ranked = self.ranked()
        k_max = len(ranked) if k_max is None else min(k_max, len(ranked))
        out: dict[int, float] = {}
        held = 0.0
        for i, k in enumerate(ranked[:k_max], start=1):
            held += shares[k]
            out[i] = min(held, 1.0)
        return out

    def __json__(self) -> dict[str, Any]:
        """The shares instead of the raw energy: by frequency, cumulative top-k, constant."""
        return {
            "modulus": self.modulus,
            "energy_share": self.share,
            "top_k_energy": self.top_k_energy(),
            "constant_share": self.constant_share,
        }


@dataclass(frozen=True)
class LogitSpectrum2D:
    """The 2D Fourier transform of a logit table over the (a, b) grid, summed over outputs.

    Attributes:
        modulus: p.
        component_energy: (p, p) energy of each pair of basis functions (rows: a, columns: b),
            in the order of `basis_labels(p)`.
        frequency_energy: (p//2 + 1, p//2 + 1) energy grouped by (frequency of a, frequency of b).
    """

    json_skip: ClassVar[frozenset[str]] = frozenset({"component_energy"})
    json_extra: ClassVar[tuple[str, ...]] = ("diagonal_share",)

    modulus: int
    component_energy: Tensor
    frequency_energy: Tensor

    @property
    def labels(self) -> list[str]:
        """Names of the basis functions along both axes of `component_energy`."""
        return basis_labels(self.modulus)

    @property
    def diagonal_share(self) -> dict[int, float]:
        """Frequency k -> share of the non-constant energy at (k, k), i.e. in terms like cos(w a) cos(w b)."""
        total = float(self.frequency_energy.sum() - self.frequency_energy[0, 0])
        diag = self.frequency_energy.diagonal()
        return {k: (float(diag[k]) / total if total > 0 else 0.0) for k in range(1, diag.shape[0])}


def frequency_spectrum(x: Tensor, *, axis: int = 0, modulus: int | None = None) -> FrequencySpectrum:
    """Return the energy of `x` at each frequency of Z_p along its residue axis.

    Works on any tensor indexed by residues: an embedding (p, d_model), an unembedding
    transposed to (p, d_model), a logit table (p, p, n_classes) along one of its axes, or
    a one-hot network's first-layer weight (unit, 2p) with `axis=1, modulus=p`.

    Args:
        x: The tensor; every other axis is summed over.
        axis: Residue axis.
        modulus: p; None means the axis length. A multiple of p means concatenated blocks.

    Returns:
        FrequencySpectrum with the energy at k = 0 .. p//2.

    Raises:
        DataError: If `x` holds NaN/inf or the axis length does not fit `modulus`.
    """
    blocks = residues_last(_as_float(x), axis=axis, modulus=modulus)  # (..., n_blocks, p)
    p = blocks.shape[-1]
    if p < 2:
        raise DataError(f"need at least 2 residues along axis {axis}, got {p}.")
    coeffs = blocks @ fourier_basis(p, device=blocks.device).T  # (..., n_blocks, p) coefficients
    per_row = (coeffs**2).reshape(-1, p).sum(dim=0)  # (p,) energy per basis row
    energy = torch.zeros(p // 2 + 1, dtype=torch.float64, device="cpu")
    energy.index_add_(0, basis_frequencies(p), per_row.cpu())
    return FrequencySpectrum(modulus=p, energy=tuple(float(e) for e in energy))


def key_frequencies(
    x: Tensor | FrequencySpectrum, share: float = 0.9, *, axis: int = 0, modulus: int | None = None
) -> list[int]:
    """Return the smallest set of frequencies holding `share` of the non-constant energy of `x`.

    Args:
        x: A tensor (see `frequency_spectrum`) or a spectrum already computed.
        share: Energy share to reach, in (0, 1].
        axis: Residue axis of a tensor `x`.
        modulus: p, for tensors whose residue axis holds several blocks.

    Returns:
        Sorted frequencies in 1..p//2.
    """
    spectrum = x if isinstance(x, FrequencySpectrum) else frequency_spectrum(x, axis=axis, modulus=modulus)
    return spectrum.key_frequencies(share)


def logit_spectrum_2d(logits: Tensor) -> LogitSpectrum2D:
    """Return the 2D Fourier transform over (a, b) of a logit table, energy summed over outputs.

    Args:
        logits: (p, p, n_classes) with `logits[a, b]` the model's output on (a, b), or a
            single (p, p) table (e.g. the correct-class logits).

    Returns:
        LogitSpectrum2D. For the Fourier algorithm, logits ~ sum_k cos(w_k (a + b - c)), whose
        energy sits on the diagonal (k, k) of the frequency grid.

    Raises:
        DataError: If the first two axes are not both p.
    """
    table = _as_float(logits)
    if table.dim() == 2:
        table = table.unsqueeze(-1)
    if table.dim() != 3 or table.shape[0] != table.shape[1] or table.shape[0] < 2:
        raise DataError(
            f"a logit table must be (p, p, n_classes) or (p, p), got {tuple(logits.shape)}; "
            "build it with mechscope.fourier.tables.logit_table(model)."
        )
    p = table.shape[0]
    basis = fourier_basis(p, device=table.device)
    coeffs = torch.einsum("ia,abc,jb->ijc", basis, table, basis)  # (p, p, n_classes)
    component = (coeffs**2).sum(dim=-1).cpu()  # (p, p)
    freqs = basis_frequencies(p)
    n = p // 2 + 1
    grouped = torch.zeros(n, n, dtype=torch.float64, device="cpu")
    grouped.index_put_((freqs[:, None].expand(p, p), freqs[None, :].expand(p, p)), component, accumulate=True)
    return LogitSpectrum2D(modulus=p, component_energy=component, frequency_energy=grouped)


def _as_float(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise DataError(f"expected a torch.Tensor, got {type(x).__name__}; wrap arrays with torch.as_tensor(...).")
    return check_finite(x.detach().to(torch.float64), "the tensor", fix="A Fourier spectrum needs finite numbers")


def _check_share(share: float) -> None:
    if not (isinstance(share, (int, float)) and 0.0 < share <= 1.0):
        raise ConfigError(f"share must be a number in (0, 1], got {share!r}; e.g. share=0.9.")

"""The real Fourier basis of Z_p and projections onto chosen frequencies.

Row 0 of the basis is the constant `1/sqrt(p)`; for each frequency `k = 1 .. (p-1)//2`
come `cos(2 pi k n / p)` and `sin(2 pi k n / p)`, scaled to unit norm; an even `p`
adds the alternating row `cos(pi n)` for `k = p/2`. The rows are orthonormal, so
`B @ x` gives coefficients whose squares add up to the energy of `x` (Parseval).

Tensors whose residue axis holds several concatenated blocks of length `p` (the first
layer of a one-hot network sees `[one_hot(a), one_hot(b)]`, i.e. `2p` columns) are
handled block by block: pass `modulus=p` and the axis length `n * p`.

Example:
    >>> B = fourier_basis(7)
    >>> torch.allclose(B @ B.T, torch.eye(7, dtype=B.dtype))
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from mechscope.errors import ConfigError, DataError

__all__ = [
    "fourier_basis",
    "basis_frequencies",
    "basis_labels",
    "n_frequencies",
    "check_frequencies",
    "frequency_projector",
    "residues_last",
    "restore_residues",
]


def fourier_basis(modulus: int, *, dtype: torch.dtype = torch.float64, device: torch.device | None = None) -> Tensor:
    """Return the orthonormal real Fourier basis of Z_p as rows, shape (p, p).

    Args:
        modulus: p >= 2.
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        B with `B[i]` the i-th basis function evaluated at n = 0..p-1; see
        `basis_frequencies` / `basis_labels` for what each row is.
    """
    p = _check_modulus(modulus)
    # Built on the CPU in float64, then moved: the same basis on every device.
    n = torch.arange(p, dtype=torch.float64, device="cpu")
    rows = [torch.full((p,), 1.0 / math.sqrt(p), dtype=torch.float64, device="cpu")]
    for k in range(1, (p - 1) // 2 + 1):
        angle = 2.0 * math.pi * k * n / p
        rows.append(torch.cos(angle) * math.sqrt(2.0 / p))
        rows.append(torch.sin(angle) * math.sqrt(2.0 / p))
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * n) / math.sqrt(p))
    return torch.stack(rows).to(dtype=dtype, device=device)


def basis_frequencies(modulus: int) -> Tensor:
    """Return the frequency k of each basis row, shape (p,) int64 (0 for the constant)."""
    p = _check_modulus(modulus)
    freqs = [0] + [k for k in range(1, (p - 1) // 2 + 1) for _ in range(2)]
    if p % 2 == 0:
        freqs.append(p // 2)
    return torch.tensor(freqs, dtype=torch.int64, device="cpu")


def basis_labels(modulus: int) -> list[str]:
    """Return a readable name per basis row: "const", "cos 1", "sin 1", ..."""
    p = _check_modulus(modulus)
    labels = ["const"] + [f"{f} {k}" for k in range(1, (p - 1) // 2 + 1) for f in ("cos", "sin")]
    if p % 2 == 0:
        labels.append(f"cos {p // 2}")
    return labels


def n_frequencies(modulus: int) -> int:
    """Number of non-constant frequencies of Z_p: `p // 2`."""
    return _check_modulus(modulus) // 2


def check_frequencies(frequencies: Iterable[int], modulus: int) -> list[int]:
    """Return `frequencies` as a sorted list of distinct ints in 1..p//2.

    Frequencies above p/2 are folded (k and p-k are the same frequency).

    Raises:
        ConfigError: If a frequency is not an integer or is a multiple of p.
    """
    p = _check_modulus(modulus)
    out: set[int] = set()
    for k in frequencies:
        if isinstance(k, bool) or not isinstance(k, int):
            try:
                k = int(k)  # numpy / tensor integers
            except (TypeError, ValueError):
                raise ConfigError(f"frequencies must be integers, got {k!r}.") from None
        folded = k % p
        folded = min(folded, p - folded)
        if folded == 0:
            raise ConfigError(
                f"frequency {k} is the constant term of Z_{p}; choose frequencies in 1..{p // 2}."
            )
        out.add(folded)
    return sorted(out)


def frequency_projector(
    modulus: int,
    frequencies: Iterable[int],
    *,
    include_constant: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> Tensor:
    """Return the (p, p) orthogonal projector onto the span of the chosen frequencies.

    Args:
        modulus: p.
        frequencies: Frequencies in 1..p//2 (folded as in `check_frequencies`).
        include_constant: Also keep the constant component.
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        P (p, p) with `x @ P` keeping only those components of a row vector x over Z_p.
    """
    keep = set(check_frequencies(frequencies, modulus))
    if include_constant:
        keep.add(0)
    basis = fourier_basis(modulus, dtype=dtype, device=device)
    rows = torch.tensor([int(k) in keep for k in basis_frequencies(modulus)], device=basis.device)
    chosen = basis[rows]
    return chosen.T @ chosen


def residues_last(x: Tensor, *, axis: int = 0, modulus: int | None = None) -> Tensor:
    """Move the residue axis of `x` last, splitting concatenated blocks of length p.

    Args:
        x: Any tensor with a residue axis.
        axis: The residue axis.
        modulus: p; None means the axis length itself. With a multiple `n * p`, the axis
            is read as n consecutive blocks of p residues.

    Returns:
        A view shaped (*other_dims, n_blocks, p).

    Raises:
        DataError: If the axis length is not a multiple of `modulus`.
    """
    if x.dim() == 0:
        raise DataError("need a tensor with a residue axis, got a scalar.")
    moved = x.movedim(axis, -1)
    length = moved.shape[-1]
    p = length if modulus is None else _check_modulus(modulus)
    if length % p != 0 or length == 0:
        raise DataError(
            f"axis {axis} has length {length}, which is not a multiple of modulus {p}; "
            "pass axis= the residue axis and modulus= the p of the task."
        )
    return moved.reshape(*moved.shape[:-1], length // p, p)


def restore_residues(y: Tensor, like: Tensor, *, axis: int = 0) -> Tensor:
    """Undo `residues_last`: reshape `y` (*other_dims, n_blocks, p) back to the layout of `like`."""
    moved_shape = like.movedim(axis, -1).shape
    return y.reshape(moved_shape).movedim(-1, axis)


def _check_modulus(modulus: int) -> int:
    if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 2:
        raise ConfigError(f"modulus must be an integer >= 2, got {modulus!r}.")
    return modulus

"""Restricted and excluded loss (Nanda et al. 2023, section 5.1).

For each output class c, the logits over the (a, b) grid are split along the directions
`cos(w_k (a + b))` and `sin(w_k (a + b))` (w_k = 2 pi k / p), which are orthogonal on the
full grid. A network running the Fourier algorithm computes logits
~ sum_k cos(w_k (a + b - c)), i.e. it lives in those directions for its key frequencies.

* Restricted logits keep only the mean over (a, b) plus the key-frequency directions; the
  restricted loss is low once the algorithm carries the prediction.
* Excluded logits remove the key-frequency directions and keep everything else; the
  excluded loss on the training pairs is high once memorisation is no longer what fits them.

Nanda et al. apply the projection to the neuron activations, which is the same as
projecting the logits whenever the logits are linear in those activations (their
model's skip path aside); working on the logit table makes the measures available for
any model. Losses are cross-entropies computed in float64 (grokked losses reach 1e-7).

Example:
    >>> logits = logit_table(model)
    >>> restricted_loss(logits, [4, 11, 17], pairs=data.extras["pairs_test"])
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from mechscope.errors import DataError
from mechscope.fourier.basis import check_frequencies

__all__ = [
    "sum_directions",
    "restricted_logits",
    "excluded_logits",
    "table_loss",
    "table_accuracy",
    "restricted_loss",
    "excluded_loss",
    "addition_labels",
]


def sum_directions(modulus: int, frequencies: Iterable[int], *, device: torch.device | None = None) -> Tensor:
    """Return unit-norm `cos(w_k (a + b))`, `sin(w_k (a + b))` over the grid, shape (n_dirs, p, p).

    Directions that vanish (the sine at k = p/2 for even p) are left out.
    """
    p = modulus
    freqs = check_frequencies(frequencies, p)
    r = torch.arange(p, dtype=torch.float64, device=device)
    s = r[:, None] + r[None, :]  # (p, p) a + b
    dirs = []
    for k in freqs:
        angle = 2.0 * math.pi * k * s / p
        for d in (torch.cos(angle), torch.sin(angle)):
            norm = d.norm()
            if norm > 1e-9:
                dirs.append(d / norm)
    if not dirs:
        return torch.zeros(0, p, p, dtype=torch.float64, device=device)
    return torch.stack(dirs)


def restricted_logits(logits: Tensor, frequencies: Iterable[int]) -> Tensor:
    """Keep, for each output class, the mean over (a, b) and the key-frequency directions.

    Args:
        logits: (p, p, n_classes) logit table.
        frequencies: Key frequencies to keep.

    Returns:
        Float64 tensor shaped like `logits`.
    """
    table = _table(logits)
    return table.mean(dim=(0, 1), keepdim=True) + _projection(table, frequencies)


def excluded_logits(logits: Tensor, frequencies: Iterable[int]) -> Tensor:
    """Remove the key-frequency directions from every output class's logits; keep the rest."""
    table = _table(logits)
    return table - _projection(table, frequencies)


def addition_labels(modulus: int) -> Tensor:
    """Return the table of correct answers (a + b) mod p, shape (p, p) int64."""
    r = torch.arange(modulus, device="cpu")
    return (r[:, None] + r[None, :]) % modulus


def table_loss(logits: Tensor, *, pairs: Tensor | None = None, labels: Tensor | None = None) -> float:
    """Mean cross-entropy (float64) of a logit table on the chosen pairs.

    Args:
        logits: (p, p, n_classes).
        pairs: (batch, 2) int pairs to score; None scores all p * p pairs.
        labels: (p, p) correct classes; defaults to (a + b) mod p.

    Returns:
        The mean loss.
    """
    flat, target = _select(_table(logits), pairs, labels)
    return float(F.cross_entropy(flat, target))


def table_accuracy(logits: Tensor, *, pairs: Tensor | None = None, labels: Tensor | None = None) -> float:
    """Fraction of the chosen pairs whose top logit is the correct class."""
    flat, target = _select(_table(logits), pairs, labels)
    return float((flat.argmax(dim=1) == target).double().mean())


def restricted_loss(
    logits: Tensor, frequencies: Iterable[int], *, pairs: Tensor | None = None, labels: Tensor | None = None
) -> float:
    """Loss when only the key frequencies (and each class's mean) are kept.

    Args:
        logits: (p, p, n_classes) logit table.
        frequencies: Key frequencies.
        pairs: Pairs to score (Nanda et al. report it on the held-out split); None = all.
        labels: (p, p) correct classes; defaults to (a + b) mod p.
    """
    return table_loss(restricted_logits(logits, frequencies), pairs=pairs, labels=labels)


def excluded_loss(
    logits: Tensor, frequencies: Iterable[int], *, pairs: Tensor | None = None, labels: Tensor | None = None
) -> float:
    """Loss when the key frequencies are removed and everything else is kept.

    Args:
        logits: (p, p, n_classes) logit table.
        frequencies: Key frequencies.
        pairs: Pairs to score (Nanda et al. report it on the training split); None = all.
        labels: (p, p) correct classes; defaults to (a + b) mod p.
    """
    return table_loss(excluded_logits(logits, frequencies), pairs=pairs, labels=labels)


def _projection(table: Tensor, frequencies: Iterable[int]) -> Tensor:
    dirs = sum_directions(table.shape[0], frequencies, device=table.device)  # (n_dirs, p, p)
    coeffs = torch.einsum("dab,abc->dc", dirs, table)
    return torch.einsum("dab,dc->abc", dirs, coeffs)


def _table(logits: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[0] != logits.shape[1]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise DataError(
            f"expected a logit table (p, p, n_classes), got {shape}; "
            "build it with mechscope.fourier.tables.logit_table(model)."
        )
    return logits.detach().to(torch.float64)


def _select(table: Tensor, pairs: Tensor | None, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    p = table.shape[0]
    target_table = addition_labels(p) if labels is None else labels.long().cpu()
    if target_table.shape != (p, p):
        raise DataError(f"labels must be a (p, p) table of classes, got {tuple(target_table.shape)}.")
    target_table = target_table.to(table.device)
    if pairs is None:
        return table.reshape(p * p, -1), target_table.reshape(-1)
    if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.is_floating_point() or pairs.shape[0] == 0:
        raise DataError(f"pairs must be a non-empty (batch, 2) integer tensor, got {pairs.dtype} {tuple(pairs.shape)}.")
    a, b = pairs[:, 0].to(table.device), pairs[:, 1].to(table.device)
    if int(pairs.min()) < 0 or int(pairs.max()) >= p:
        raise DataError(f"pair values must lie in 0..{p - 1}, got {int(pairs.min())}..{int(pairs.max())}.")
    return table[a, b], target_table[a, b]

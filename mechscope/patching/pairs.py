"""Clean and corrupt inputs for a patching experiment, with the logit difference that tells them apart.

For modular addition a pair `(a, b)` is corrupted to `(a, b + 1 mod p)`, which moves the
answer from `c` to `c + 1`; the metric is the logit of the clean answer minus the logit of the
corrupt one. For any other labelled data each clean example is paired with the next held-out
example of a different class.

Example:
    >>> pairing = modular_pairing(59, torch.tensor([[3, 5]]))
    >>> pairing.corrupt, pairing.metric.name
    (tensor([[3, 6]]), 'logit diff answers - answers')
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.data import DataBundle
from mechscope.errors import DataError
from mechscope.patching.metrics import Metric, logit_diff

__all__ = ["Pairing", "modular_pairing", "default_pairing"]


@dataclass(frozen=True)
class Pairing:
    """Clean inputs, corrupt inputs of the same shape, and a metric that separates them."""

    clean: Tensor
    corrupt: Tensor
    answer: Tensor  # (n,) the clean class
    wrong: Tensor  # (n,) the corrupt class
    metric: Metric


def modular_pairing(modulus: int, clean: Tensor, corrupt: Tensor | None = None) -> Pairing:
    """Pairs `(a, b)` of (a + b) mod p; corrupt defaults to `(a, b + 1 mod p)`.

    Raises:
        DataError: pairs that are not (n, 2) residues, or corrupt pairs with the clean answer.
    """
    clean = _pairs(clean, modulus, "clean")
    if corrupt is None:
        corrupt = torch.stack([clean[:, 0], (clean[:, 1] + 1) % modulus], dim=1)
    corrupt = _pairs(corrupt, modulus, "corrupt")
    if corrupt.shape != clean.shape:
        raise DataError(f"give as many corrupt pairs as clean ones, got {corrupt.shape[0]} and {clean.shape[0]}.")
    answer, wrong = clean.sum(dim=1) % modulus, corrupt.sum(dim=1) % modulus
    if bool((answer == wrong).any()):
        i = int((answer == wrong).nonzero()[0, 0])
        raise DataError(
            f"corrupt pair {tuple(corrupt[i].tolist())} has the same answer as clean pair {tuple(clean[i].tolist())}; "
            "a corrupt pair must change (a + b) mod p."
        )
    return Pairing(clean, corrupt, answer, wrong, logit_diff(answer, wrong))


def default_pairing(data: DataBundle, n: int = 16) -> Pairing:
    """The documented default: the first `n` held-out examples against corrupt partners (module docstring).

    Raises:
        DataError: the data is not classification, or has one class only.
    """
    if "modulus" in data.extras and data.x_test.dim() == 2 and data.x_test.shape[1] == 2:
        return modular_pairing(int(data.extras["modulus"]), data.x_test[:n])
    if data.task != "classification":
        raise DataError("the default pairing needs labelled classification data; give --clean and --corrupt.")
    labels = data.y_test.long()
    clean_index = torch.arange(min(n, labels.shape[0]))
    differs = labels[None, :] != labels[clean_index, None]  # (n, N)
    if not bool(differs.any(dim=1).all()):
        raise DataError("the held-out data has one class only; nothing can serve as a corrupt input.")
    later = differs & (torch.arange(labels.shape[0])[None, :] > clean_index[:, None])
    first_later, first_any = later.int().argmax(dim=1), differs.int().argmax(dim=1)
    corrupt_index = torch.where(later.any(dim=1), first_later, first_any)
    answer, wrong = labels[clean_index], labels[corrupt_index]
    return Pairing(data.x_test[clean_index], data.x_test[corrupt_index], answer, wrong, logit_diff(answer, wrong))


def _pairs(value: Tensor, modulus: int, what: str) -> Tensor:
    pairs = torch.as_tensor(value).long()
    if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise DataError(f"{what} pairs must be (n, 2), got {tuple(pairs.shape)}; e.g. --{what} 3,5.")
    if int(pairs.min()) < 0 or int(pairs.max()) >= modulus:
        raise DataError(f"{what} pairs must hold residues 0..{modulus - 1}, got {pairs.tolist()}.")
    return pairs

"""Modular arithmetic data: every pair (a, b) labelled with (a op b) mod m."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from mechscope.data._validate import check_choice, check_fraction, check_int, check_seed
from mechscope.data.bundle import DataBundle
from mechscope.errors import ConfigError
from mechscope.limits import MAX_MODULUS, check_limit, check_memory

__all__ = ["modular_data", "Operation", "Encoding", "OPERATIONS", "ENCODINGS"]

Operation = Literal["+", "-", "*"]
Encoding = Literal["one_hot", "pairs"]

OPERATIONS: tuple[str, ...] = ("+", "-", "*")
"""Binary operations `modular_data` knows."""

ENCODINGS: tuple[str, ...] = ("one_hot", "pairs")
"""Input encodings `modular_data` knows."""


def modular_data(
    modulus: int,
    operation: Operation = "+",
    *,
    encoding: Encoding = "one_hot",
    n_train: int | None = None,
    n_test: int | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> DataBundle:
    """Build a classification task whose label is `(a op b) mod modulus`.

    With `n_train` and `n_test` left as None, all `modulus**2` pairs are shuffled by
    `seed` and split once, `test_fraction` of them held out (at least one pair on
    each side). With both given, pairs are drawn uniformly with replacement, train
    then test, as the mod-2 addition experiment does (10,000 of each); the splits
    may then share pairs.

    Args:
        modulus: m >= 2; operands and labels lie in 0..m-1.
        operation: "+", "-" or "*".
        encoding: "one_hot" gives x (batch, 2m) float32, a one-hot of a in the first m
            columns and of b in the last m; "pairs" gives x (batch, 2) int64.
        n_train: Number of sampled training pairs, or None for the all-pairs split.
        n_test: Number of sampled test pairs, or None for the all-pairs split.
        test_fraction: Share of the m*m pairs held out in the all-pairs split.
        seed: Seed of the private generator; the global RNG is left untouched.

    Returns:
        A DataBundle with y int64 (batch,) and extras "pairs_train", "pairs_test"
        ((batch, 2) int64), "modulus" and "operation".

    Raises:
        ConfigError: modulus < 2, unknown operation or encoding, only one of
            n_train/n_test given, counts < 1, or test_fraction outside (0, 1).

    Example:
        >>> data = modular_data(2)
        >>> data.x_train.shape, data.n_classes
        (torch.Size([2, 4]), 2)
    """
    modulus = check_int(
        "modulus", modulus, minimum=2, hint="Pass e.g. modulus=2 for mod-2 arithmetic or modulus=113."
    )
    op = check_choice("operation", operation, OPERATIONS)
    enc = check_choice("encoding", encoding, ENCODINGS)
    test_fraction = check_fraction("test_fraction", test_fraction)
    seed = check_seed(seed)
    n_train, n_test = _check_counts(modulus, n_train, n_test)
    n_examples = modulus * modulus if n_train is None or n_test is None else n_train + n_test
    per_example = 2 * 8 * 3 + (2 * modulus * (8 + 4) if enc == "one_hot" else 0)  # pairs, labels; one-hot
    check_memory(n_examples * per_example, f"modular data mod {modulus} ({n_examples} examples, {enc})")
    pairs_train, pairs_test = _draw_pairs(modulus, n_train, n_test, test_fraction, seed)
    spec = {
        "kind": "modular", "modulus": modulus, "operation": op, "encoding": enc, "n_train": n_train,
        "n_test": n_test, "test_fraction": test_fraction, "seed": seed,
    }
    return DataBundle(
        x_train=_encode(pairs_train, modulus, enc),
        y_train=_label(pairs_train, modulus, op),
        x_test=_encode(pairs_test, modulus, enc),
        y_test=_label(pairs_test, modulus, op),
        spec=spec,
        task="classification",
        n_classes=modulus,
        class_names=tuple(str(k) for k in range(modulus)),
        extras={"pairs_train": pairs_train, "pairs_test": pairs_test, "modulus": modulus, "operation": op},
    )


def _check_counts(modulus: int, n_train: int | None, n_test: int | None) -> tuple[int | None, int | None]:
    """Checked (n_train, n_test): both None (all pairs) or both positive integers; also bounds the modulus."""
    if (n_train is None) != (n_test is None):
        raise ConfigError(
            f"Got n_train={n_train!r} and n_test={n_test!r}; pass both to sample pairs with "
            "replacement, or neither to split all modulus**2 pairs by test_fraction."
        )
    check_limit("modulus", modulus, MAX_MODULUS)
    if n_train is not None and n_test is not None:
        n_train = check_int("n_train", n_train, minimum=1)
        n_test = check_int("n_test", n_test, minimum=1)
    return n_train, n_test


def _draw_pairs(
    modulus: int, n_train: int | None, n_test: int | None, test_fraction: float, seed: int
) -> tuple[Tensor, Tensor]:
    """(train, test) pairs (batch, 2) int64: all pairs split once, or n_train then n_test drawn with replacement."""
    generator = torch.Generator().manual_seed(seed)
    if n_train is None or n_test is None:
        return _split_all_pairs(modulus, test_fraction, generator)
    pairs_train = torch.randint(0, modulus, (n_train, 2), generator=generator)
    pairs_test = torch.randint(0, modulus, (n_test, 2), generator=generator)
    return pairs_train, pairs_test


def _split_all_pairs(modulus: int, test_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Shuffle the m*m pairs and cut them into (train, test), each (batch, 2) int64."""
    n_pairs = modulus * modulus
    n_test = min(max(round(n_pairs * test_fraction), 1), n_pairs - 1)
    order = torch.randperm(n_pairs, generator=generator)
    pairs = torch.stack([order // modulus, order % modulus], dim=1)  # (batch, 2)
    return pairs[n_test:].clone(), pairs[:n_test].clone()


def _label(pairs: Tensor, modulus: int, operation: str) -> Tensor:
    """(a op b) mod m for each row of `pairs`; remainder keeps a - b non-negative."""
    a, b = pairs[:, 0], pairs[:, 1]
    if operation == "+":
        value = a + b
    elif operation == "-":
        value = a - b
    else:
        value = a * b
    return torch.remainder(value, modulus)


def _encode(pairs: Tensor, modulus: int, encoding: str) -> Tensor:
    """Pairs as the model input: two concatenated one-hots (float32) or the integers themselves."""
    if encoding == "pairs":
        return pairs.clone()
    return torch.cat([F.one_hot(pairs[:, 0], modulus), F.one_hot(pairs[:, 1], modulus)], dim=1).float()

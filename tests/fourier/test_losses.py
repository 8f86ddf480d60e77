from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import DataError
from mechscope.fourier.losses import (
    addition_labels,
    excluded_logits,
    excluded_loss,
    restricted_logits,
    restricted_loss,
    sum_directions,
    table_accuracy,
    table_loss,
)

P = 13


def _clock_table(freqs=(2, 5), scale: float = 4.0) -> torch.Tensor:
    r = torch.arange(P, dtype=torch.float64)
    a, b, c = r[:, None, None], r[None, :, None], r[None, None, :]
    return scale * sum(torch.cos(2 * math.pi * k * (a + b - c) / P) for k in freqs)


def test_sum_directions_are_orthonormal_on_the_grid():
    dirs = sum_directions(P, [1, 4, 6]).reshape(6, -1)
    assert torch.allclose(dirs @ dirs.T, torch.eye(6, dtype=dirs.dtype), atol=1e-12)
    assert torch.allclose(dirs.sum(dim=1), torch.zeros(6, dtype=dirs.dtype), atol=1e-12)  # orthogonal to the mean


def test_sum_directions_drop_the_vanishing_sine_of_even_p():
    assert sum_directions(8, [4]).shape == (1, 8, 8)


def test_restricted_logits_keep_a_clock_table_unchanged():
    logits = _clock_table() + 1.5
    assert torch.allclose(restricted_logits(logits, [2, 5]), logits, atol=1e-10)


def test_excluded_logits_of_a_clock_table_are_constant_per_class():
    excluded = excluded_logits(_clock_table(), [2, 5])
    assert float(excluded.std(dim=(0, 1)).max()) < 1e-10


def test_restricted_and_excluded_split_the_table():
    torch.manual_seed(0)
    logits = torch.randn(P, P, P, dtype=torch.float64)
    freqs = [1, 3]
    mean = logits.mean(dim=(0, 1), keepdim=True)
    assert torch.allclose(restricted_logits(logits, freqs) + excluded_logits(logits, freqs) - mean, logits)


def test_restricted_loss_is_low_and_excluded_loss_is_chance_on_a_clock_table():
    logits = _clock_table(scale=8.0)
    assert restricted_loss(logits, [2, 5]) == pytest.approx(table_loss(logits), rel=1e-9)
    assert restricted_loss(logits, [2, 5]) < 1e-3
    assert excluded_loss(logits, [2, 5]) == pytest.approx(math.log(P), rel=1e-9)  # constant logits = uniform
    assert restricted_loss(logits, [2]) > restricted_loss(logits, [2, 5])


def test_table_loss_and_accuracy_score_only_the_chosen_pairs():
    logits = torch.zeros(P, P, P, dtype=torch.float64)
    labels = addition_labels(P)
    logits[0, :, :] = 100.0 * torch.nn.functional.one_hot(labels[0], P)  # row a = 0 is right, the rest uniform
    row0 = torch.stack([torch.zeros(P, dtype=torch.long), torch.arange(P)], dim=1)
    assert table_accuracy(logits, pairs=row0) == 1.0
    assert table_loss(logits, pairs=row0) < 1e-30
    assert table_loss(logits) == pytest.approx(math.log(P) * (P - 1) / P, rel=1e-9)


def test_table_loss_rejects_bad_tables_and_pairs():
    with pytest.raises(DataError, match=r"\(p, p, n_classes\)"):
        table_loss(torch.zeros(P, P))
    with pytest.raises(DataError, match="pair values must lie"):
        table_loss(torch.zeros(P, P, P), pairs=torch.tensor([[0, P]]))

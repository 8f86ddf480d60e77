from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.fourier.basis import (
    basis_frequencies,
    basis_labels,
    check_frequencies,
    fourier_basis,
    frequency_projector,
    n_frequencies,
    residues_last,
    restore_residues,
)


@pytest.mark.parametrize("p", [2, 3, 8, 31])
def test_fourier_basis_is_orthonormal_for_odd_and_even_p(p):
    basis = fourier_basis(p)
    assert basis.shape == (p, p)
    assert torch.allclose(basis @ basis.T, torch.eye(p, dtype=basis.dtype), atol=1e-12)


def test_basis_rows_are_the_named_cosines_and_sines():
    p = 7
    basis = fourier_basis(p)
    n = torch.arange(p, dtype=torch.float64)
    assert basis_labels(p) == ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3", "sin 3"]
    assert basis_frequencies(p).tolist() == [0, 1, 1, 2, 2, 3, 3]
    expected = torch.sin(2 * math.pi * 2 * n / p) * math.sqrt(2 / p)
    assert torch.allclose(basis[4], expected)


def test_even_modulus_has_the_alternating_row_last():
    basis = fourier_basis(4)
    assert basis_labels(4)[-1] == "cos 2"
    assert torch.allclose(basis[-1], torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=basis.dtype) / 2)
    assert n_frequencies(4) == 2


def test_check_frequencies_folds_dedups_and_sorts():
    assert check_frequencies([12, 3, 28, 3], 31) == [3, 12]


def test_check_frequencies_rejects_the_constant():
    with pytest.raises(ConfigError, match="constant term"):
        check_frequencies([31], 31)


def test_frequency_projector_is_an_idempotent_symmetric_projector():
    proj = frequency_projector(11, [2, 5])
    assert torch.allclose(proj @ proj, proj, atol=1e-12)
    assert torch.allclose(proj, proj.T)
    assert float(torch.trace(proj)) == pytest.approx(4.0)  # cos + sin for each frequency
    with_const = frequency_projector(11, [2, 5], include_constant=True)
    assert float(torch.trace(with_const)) == pytest.approx(5.0)


def test_residues_last_splits_concatenated_one_hot_blocks():
    weight = torch.arange(3 * 10, dtype=torch.float32).reshape(3, 10)  # (unit, 2p) with p = 5
    blocks = residues_last(weight, axis=1, modulus=5)
    assert blocks.shape == (3, 2, 5)
    assert torch.equal(blocks[1, 1], weight[1, 5:])
    assert torch.equal(restore_residues(blocks, weight, axis=1), weight)


def test_residues_last_rejects_a_length_that_is_not_a_multiple():
    with pytest.raises(DataError, match="not a multiple of modulus 5"):
        residues_last(torch.zeros(3, 7), axis=1, modulus=5)

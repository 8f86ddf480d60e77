from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.fourier.energy import frequency_spectrum, key_frequencies, logit_spectrum_2d
from mechscope.serialize import to_json


def _planted(p: int, amplitudes: dict[int, float], d: int = 6, seed: int = 0) -> torch.Tensor:
    """(p, d) matrix whose column j is sum_k a_k cos(w_k n + phase_jk): energy a_k^2 * p/2 per column."""
    gen = torch.Generator().manual_seed(seed)
    n = torch.arange(p, dtype=torch.float64)[:, None]
    out = torch.zeros(p, d, dtype=torch.float64)
    for k, amp in amplitudes.items():
        phase = torch.rand(1, d, generator=gen, dtype=torch.float64) * 2 * math.pi
        out += amp * torch.cos(2 * math.pi * k * n / p + phase)
    return out


def test_frequency_spectrum_shares_match_planted_amplitudes():
    spectrum = frequency_spectrum(_planted(13, {2: 3.0, 5: 1.0}) + 7.0)
    share = spectrum.share
    assert share[2] == pytest.approx(0.9, abs=1e-12)
    assert share[5] == pytest.approx(0.1, abs=1e-12)
    assert sum(v for k, v in share.items() if k not in (2, 5)) < 1e-20
    assert spectrum.constant_share > 0.5  # the +7 offset lives in the constant term only


def test_key_frequencies_is_the_smallest_set_reaching_the_share():
    x = _planted(17, {1: 4.0, 3: 2.0, 8: 1.0})  # shares 16/21, 4/21, 1/21
    assert key_frequencies(x, 0.7) == [1]
    assert key_frequencies(x, 0.9) == [1, 3]
    assert key_frequencies(x, 0.99) == [1, 3, 8]


def test_top_k_energy_is_cumulative_and_ends_at_one():
    spectrum = frequency_spectrum(_planted(17, {1: 4.0, 3: 2.0, 8: 1.0}))
    top = spectrum.top_k_energy(3)
    assert top[1] == pytest.approx(16 / 21)
    assert top[2] == pytest.approx(20 / 21)
    assert top[3] == pytest.approx(1.0)
    assert list(spectrum.ranked()[:3]) == [1, 3, 8]


def test_frequency_spectrum_reads_any_axis_and_one_hot_blocks():
    x = _planted(11, {4: 1.0}, d=5)
    assert frequency_spectrum(x.T, axis=1).key_frequencies(0.999) == [4]
    two_blocks = torch.cat([x.T, _planted(11, {4: 2.0}, d=5, seed=1).T], dim=1)  # (unit, 2p)
    assert frequency_spectrum(two_blocks, axis=1, modulus=11).key_frequencies(0.999) == [4]


def test_frequency_spectrum_to_json_uses_string_keys():
    result = to_json(frequency_spectrum(_planted(7, {1: 1.0})))
    assert set(result["energy_share"]) == {"1", "2", "3"}
    assert result["top_k_energy"]["1"] == pytest.approx(1.0)


def test_frequency_spectrum_rejects_nan():
    x = torch.zeros(5, 2)
    x[0, 0] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in the tensor: 1 of 10 \(1 nan\); the first is nan at "
                       r"index \(0, 0\)"):
        frequency_spectrum(x)


def test_key_frequencies_rejects_a_share_out_of_range():
    with pytest.raises(ConfigError, match="share must be"):
        key_frequencies(torch.randn(5, 3), 1.5)


def test_logit_spectrum_2d_of_a_clock_table_sits_on_the_diagonal():
    p = 13
    r = torch.arange(p, dtype=torch.float64)
    a, b, c = r[:, None, None], r[None, :, None], r[None, None, :]
    logits = sum(torch.cos(2 * math.pi * k * (a + b - c) / p) for k in (2, 5))
    spectrum = logit_spectrum_2d(logits)
    grid = spectrum.frequency_energy
    assert grid.shape == (7, 7)
    off_diagonal = grid.sum() - grid.diagonal().sum()
    assert float(off_diagonal) < 1e-18 * float(grid.sum())
    share = spectrum.diagonal_share
    assert share[2] == pytest.approx(0.5) and share[5] == pytest.approx(0.5)
    assert spectrum.component_energy.shape == (p, p)


def test_logit_spectrum_2d_rejects_a_non_square_table():
    with pytest.raises(DataError, match=r"\(p, p, n_classes\)"):
        logit_spectrum_2d(torch.zeros(3, 4, 3))

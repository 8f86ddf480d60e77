from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError, LayerNameError
from mechscope.fourier import accuracy_after_ablation, frequency_spectrum, gromov_modular_mlp
from mechscope.fourier.ablation import ablate_frequencies
from mechscope.fourier.construct import gromov_grokking_mlp

P = 31
PLANTED = [3, 7, 12]


@pytest.fixture(scope="module")
def models():
    return gromov_modular_mlp(P, PLANTED, width=768), gromov_grokking_mlp(P, PLANTED, width=768)


def test_ablate_frequencies_removes_exactly_the_chosen_components():
    torch.manual_seed(0)
    x = torch.randn(P, 8)
    removed = ablate_frequencies(x, [2, 9])
    share = frequency_spectrum(removed).share
    assert share[2] < 1e-12 and share[9] < 1e-12  # float32 round-off
    before, after = frequency_spectrum(x).energy, frequency_spectrum(removed).energy
    for k in (0, 1, 5, 15):
        assert after[k] == pytest.approx(before[k], rel=1e-6)


def test_ablate_frequencies_keep_leaves_only_them_and_the_constant():
    x = torch.randn(2, 2 * P, dtype=torch.float64)  # one-hot layer layout: (unit, 2p)
    kept = ablate_frequencies(x, [4], axis=1, modulus=P, keep=True)
    assert frequency_spectrum(kept, axis=1, modulus=P).key_frequencies(0.999999) == [4]
    for block in (slice(0, P), slice(P, 2 * P)):  # the constant term of each block is kept
        assert torch.allclose(kept[:, block].mean(dim=1), x[:, block].mean(dim=1))


def test_accuracy_after_ablation_drops_to_chance_without_the_key_frequencies(models):
    for model in models:
        assert accuracy_after_ablation(model, PLANTED) < 0.1
        assert accuracy_after_ablation(model, PLANTED, keep=True) == 1.0
        assert accuracy_after_ablation(model, [1, 2, 4, 5]) == 1.0  # unused frequencies do not matter


def test_accuracy_after_ablation_of_one_frequency_degrades_partially(models):
    accuracy = accuracy_after_ablation(models[0], [3])
    assert 0.2 < accuracy < 1.0  # measured 0.60: the other two frequencies still vote


def test_accuracy_after_ablation_leaves_the_model_untouched(models):
    model = models[1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    accuracy_after_ablation(model, PLANTED, parameter="embed.weight")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_accuracy_after_ablation_names_a_missing_parameter(models):
    with pytest.raises(LayerNameError, match="Did you mean 'embed.weight'"):
        accuracy_after_ablation(models[1], PLANTED, parameter="embed.weights")
    with pytest.raises(ConfigError, match="does not embed residues"):
        accuracy_after_ablation(models[1], PLANTED, parameter="hidden.bias")

from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.fourier import (
    excluded_loss,
    frequency_spectrum,
    gromov_modular_mlp,
    logit_spectrum_2d,
    neuron_frequencies,
    restricted_loss,
)
from mechscope.fourier.construct import gromov_grokking_mlp, gromov_weights
from mechscope.fourier.losses import table_accuracy, table_loss
from mechscope.fourier.tables import embedding_matrix, logit_table, neuron_table

P = 31
PLANTED = [3, 7, 12]


@pytest.fixture(scope="module")
def gromov():
    return gromov_modular_mlp(P, PLANTED, width=768, seed=0)


def test_gromov_weights_are_single_cosines_with_matching_readout():
    w1, w2, freq = gromov_weights(P, PLANTED, width=6, seed=1)
    assert w1.shape == (6, 2 * P) and w2.shape == (P, 6)
    assert freq.tolist() == [3, 7, 12, 3, 7, 12]
    assert float(w1.abs().max()) <= 1.0 + 1e-6


def test_spectrum_finds_exactly_the_planted_frequencies(gromov):
    first_layer = frequency_spectrum(gromov.hidden[0].linear.weight, axis=1, modulus=P)
    assert first_layer.key_frequencies(0.999999) == PLANTED
    assert sum(v for k, v in first_layer.share.items() if k not in PLANTED) < 1e-12
    assert frequency_spectrum(embedding_matrix(gromov)).key_frequencies(0.999999) == PLANTED
    assert frequency_spectrum(gromov.output.weight).key_frequencies(0.999999) == PLANTED


def test_each_neuron_has_all_its_weight_power_in_its_planted_frequency(gromov):
    _, _, planted = gromov_weights(P, PLANTED, width=768, seed=0)
    result = neuron_frequencies(gromov.hidden[0].linear.weight.T, modulus=P)
    assert result.frequency == planted.tolist()
    assert min(result.best_share) > 1 - 1e-9
    assert {k: len(v) for k, v in result.clusters().items()} == {3: 256, 7: 256, 12: 256}


def test_relu_neuron_activations_cluster_on_their_planted_frequency(gromov):
    _, _, planted = gromov_weights(P, PLANTED, width=768, seed=0)
    result = neuron_frequencies(neuron_table(gromov, "hidden.0"))
    assert result.frequency == planted.tolist()
    # the ReLU adds harmonics 2k, 3k, ...; measured best shares are 0.96 for every neuron
    assert min(result.best_share) > 0.95
    assert result.clustered_fraction == 1.0


def test_wide_gromov_network_is_perfectly_accurate_and_lives_in_the_planted_frequencies(gromov):
    logits = logit_table(gromov)
    assert table_accuracy(logits) == 1.0
    assert restricted_loss(logits, PLANTED) < 1e-10
    assert table_loss(logits) < 1e-5
    assert excluded_loss(logits, PLANTED) > 10.0
    diagonal = logit_spectrum_2d(logits).diagonal_share
    assert sum(diagonal[k] for k in PLANTED) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gromov_accuracy_grows_with_width(seed):
    narrow = table_accuracy(logit_table(gromov_modular_mlp(P, PLANTED, width=96, seed=seed)))
    wide = table_accuracy(logit_table(gromov_modular_mlp(P, PLANTED, width=768, seed=seed)))
    assert narrow < 0.95  # measured 0.47, 0.88, 0.33
    assert wide == 1.0


def test_gromov_grokking_mlp_computes_the_same_logits_from_integer_pairs(gromov):
    model = gromov_grokking_mlp(P, PLANTED, width=768, seed=0)
    assert torch.allclose(logit_table(model), logit_table(gromov), atol=1e-4)
    assert frequency_spectrum(model.embed.weight).key_frequencies(0.999999) == PLANTED


def test_gromov_weights_reject_duplicate_frequencies():
    with pytest.raises(ConfigError, match="distinct"):
        gromov_weights(P, [3, P - 3], width=4)

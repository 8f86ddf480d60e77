from __future__ import annotations

import math

import pytest
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.fourier.neurons import neuron_frequencies
from mechscope.serialize import to_json


def _grid(p: int, k: int, phase: float = 0.3) -> torch.Tensor:
    r = torch.arange(p, dtype=torch.float64)
    w = 2 * math.pi * k / p
    a, b = r[:, None], r[None, :]
    return torch.cos(w * a + phase) * torch.cos(w * b) + 0.5 * torch.sin(w * a) + 2.0  # only frequency k terms


def test_neuron_frequencies_on_activation_grids_puts_all_variance_in_one_frequency():
    p = 11
    acts = torch.stack([_grid(p, 3), _grid(p, 5, phase=1.0), _grid(p, 3, phase=2.0)], dim=-1)  # (p, p, unit)
    result = neuron_frequencies(acts)
    assert result.kind == "activations"
    assert result.frequency == [3, 5, 3]
    assert result.best_share == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert result.clusters() == {3: [0, 2], 5: [1]}
    assert result.clustered_fraction == 1.0


def test_neuron_frequencies_leaves_mixed_neurons_out_of_clusters():
    p = 11
    mixed = _grid(p, 2) + _grid(p, 4)  # two frequencies with equal variance
    result = neuron_frequencies(torch.stack([mixed, _grid(p, 4)], dim=-1))
    assert result.best_share[0] == pytest.approx(0.5, abs=1e-9)
    assert result.clusters() == {4: [1]}


def test_neuron_frequencies_on_weights_and_dead_units():
    p = 7
    n = torch.arange(p, dtype=torch.float64)
    weights = torch.stack([torch.cos(2 * math.pi * 2 * n / p + 0.4), torch.zeros(p)], dim=1)  # (p, unit)
    result = neuron_frequencies(weights)
    assert result.kind == "weights"
    assert result.frequency == [2, 0]
    assert result.best_share == pytest.approx([1.0, 0.0])
    assert result.clusters() == {2: [0]}


def test_neuron_frequencies_json_is_plain():
    result = to_json(neuron_frequencies(torch.stack([_grid(5, 1)], dim=-1)))
    assert result["clusters"] == {"1": [0]}
    assert result["cluster_sizes"] == {"1": 1}


def test_neuron_frequencies_rejects_bad_shapes_and_thresholds():
    with pytest.raises(DataError, match=r"\(p, p, unit\)"):
        neuron_frequencies(torch.zeros(3, 4, 2))
    with pytest.raises(DataError, match="expected activations"):
        neuron_frequencies(torch.zeros(3))
    with pytest.raises(ConfigError, match="published value is 0.85"):
        neuron_frequencies(torch.zeros(5, 2), threshold=0.0)

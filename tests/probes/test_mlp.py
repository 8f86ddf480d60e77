from __future__ import annotations

import pytest
import torch

from mechscope.errors import ConfigError
from mechscope.probes import LinearProbe, MLPProbe


def _xor(n: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()


def test_mlp_probe_decodes_nonlinear_feature_a_linear_probe_cannot():
    x, y = _xor()
    mlp = MLPProbe(hidden_sizes=(32,), lr=0.03, max_epochs=400, stop_accuracy=None).fit(x[:400], y[:400])
    assert mlp.score(x[400:], y[400:]) > 0.9
    assert LinearProbe().fit(x[:400], y[:400]).score(x[400:], y[400:]) < 0.7


def test_mlp_probe_minibatches_are_deterministic():
    x, y = _xor(200)
    first = MLPProbe(batch_size=32, max_epochs=5, seed=3).fit(x, y)
    second = MLPProbe(batch_size=32, max_epochs=5, seed=3).fit(x, y)
    assert first.n_epochs_ == 5 and len(first.history_) == 5
    assert torch.equal(first.decision_function(x), second.decision_function(x))


def test_mlp_probe_stops_early_once_training_accuracy_is_reached():
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(50, 1)
    y = torch.tensor([0, 1]).repeat(50)
    probe = MLPProbe(max_epochs=300).fit(x, y)
    assert probe.n_epochs_ < 300 and probe.score(x, y) == 1.0


def test_mlp_probe_history_loss_decreases():
    x, y = _xor(200)
    history = MLPProbe(max_epochs=60, stop_accuracy=None).fit(x, y).history_
    assert history[-1] < 0.7 * history[0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_sizes": (0,)}, "hidden_sizes must be a sequence of positive integers"),
        ({"activation": "sigmoid"}, "activation must be one of"),
        ({"dropout": 1.0}, "dropout must be a probability in \\[0, 1\\), got 1.0"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"stop_accuracy": 2.0}, "stop_accuracy must be in \\(0, 1\\]"),
    ],
)
def test_mlp_probe_bad_hyperparameters_raise_at_fit(params, message):
    probe = MLPProbe(**params)  # stored unchanged, validated by fit
    with pytest.raises(ConfigError, match=message):
        probe.fit(torch.randn(8, 2), torch.arange(8) % 2)

from __future__ import annotations

import dataclasses

import pytest
import torch

from mechscope.data import function_data, modular_data
from mechscope.errors import ConfigError, DataError
from mechscope.models import GrokkingMLP, GrokkingMLPConfig, build_seeded
from mechscope.models.grokking_train import GrokkingTrainConfig, first_step_reaching, train_grokking


def _setup(seed: int = 0):
    data = modular_data(11, encoding="pairs", test_fraction=0.5, seed=seed)
    model = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=11, d_embed=8, width=16), seed)
    return model, data


def test_train_grokking_logs_both_splits_every_log_every_steps():
    model, data = _setup()
    run = train_grokking(model, data, GrokkingTrainConfig(steps=40, log_every=10), progress=False)
    assert [r["step"] for r in run.history] == [0, 10, 20, 30, 40]
    assert set(run.history[0]) == {"step", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.metrics == {k: run.history[-1][k] for k in run.metrics}
    assert run.seconds > 0


def test_train_grokking_final_metrics_describe_the_returned_model():
    model, data = _setup()
    run = train_grokking(model, data, GrokkingTrainConfig(steps=30, log_every=7), progress=False)
    with torch.no_grad():
        out = model(data.x_test).double()
    loss = float(torch.nn.functional.cross_entropy(out, data.y_test))
    assert run.history[-1]["step"] == 30
    assert run.metrics["test_loss"] == pytest.approx(loss, rel=1e-5)


def test_train_grokking_keeps_snapshots_including_init_and_final():
    model, data = _setup()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    run = train_grokking(model, data, GrokkingTrainConfig(steps=25, snapshot_every=10), progress=False)
    assert [step for step, _ in run.snapshots] == [0, 10, 20, 25]
    assert all(torch.equal(run.snapshots[0][1][k], init[k]) for k in init)
    assert all(torch.equal(run.snapshots[-1][1][k], v) for k, v in model.state_dict().items())


def test_train_grokking_is_deterministic_under_a_seed():
    runs = []
    for _ in range(2):
        model, data = _setup()
        runs.append((train_grokking(model, data, GrokkingTrainConfig(steps=20), progress=False), model))
    assert runs[0][0].history == runs[1][0].history
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()))


def test_train_grokking_uses_decoupled_weight_decay():
    model, data = _setup()
    norm_before = sum(float(p.detach().norm()) for p in model.parameters())
    train_grokking(model, data, GrokkingTrainConfig(steps=50, lr=1e-2, weight_decay=5.0), progress=False)
    strong = sum(float(p.detach().norm()) for p in model.parameters())
    model, data = _setup()
    train_grokking(model, data, GrokkingTrainConfig(steps=50, lr=1e-2, weight_decay=0.0), progress=False)
    none = sum(float(p.detach().norm()) for p in model.parameters())
    assert strong < none and strong < norm_before


def test_first_step_reaching_finds_the_first_record():
    history = [{"step": 0.0, "acc": 0.1}, {"step": 5.0, "acc": 0.995}, {"step": 9.0, "acc": 1.0}]
    assert first_step_reaching(history, "acc", 0.99) == 5
    assert first_step_reaching(history, "acc", 1.01) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"lr": -1.0}, "lr must be a positive"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"betas": (0.9, 1.0)}, "betas must be two numbers"),
        ({"snapshot_every": -1}, "snapshot_every must be"),
    ],
)
def test_grokking_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GrokkingTrainConfig(**kwargs)


def test_train_grokking_needs_classification_data():
    model, _ = _setup()
    with pytest.raises(DataError, match="classification"):
        train_grokking(model, function_data("sum", n_train=10, n_test=10), progress=False)


class _NaNAfter(torch.nn.Module):
    """Wraps a model; its logits turn NaN from the (n + 1)-th training-mode forward call on."""

    def __init__(self, inner: torch.nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls > self.n:
                return out * float("nan")
        return out


def test_train_grokking_nan_data_raises_before_any_step():
    model, data = _setup()
    x_test = data.x_test.float()
    x_test[2, 0] = float("nan")
    bad = dataclasses.replace(data, x_test=x_test)
    wrapped = _NaNAfter(model, 10**6)
    with pytest.raises(DataError, match=r"Non-finite values in data\.x_test: 1 of \d+ \(1 nan\); the first is nan at "
                       r"index \(2, 0\)\. .*check_finite=False to train_grokking\(\)"):
        train_grokking(wrapped, bad, GrokkingTrainConfig(steps=40), progress=False)
    assert wrapped.calls == 0


def test_train_grokking_stops_at_the_first_non_finite_loss():
    model, data = _setup()
    wrapped = _NaNAfter(model, 3)  # steps 0-2 are finite, step 3 is NaN
    with pytest.raises(DataError, match=r"^Non-finite value: the training loss at step 3 is nan\. Training diverged; "
                       r"the model keeps the weights it had before this step\. Lower the learning rate \(lr=0\.003; "
                       r"try lr=0\.0003\)"):
        train_grokking(wrapped, data, GrokkingTrainConfig(steps=40, log_every=100), progress=False)
    assert wrapped.calls == 4
    assert all(p.isfinite().all() for p in model.parameters())

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from mechscope.data import DataBundle, digits_data, function_data, modular_data
from mechscope.errors import ConfigError, DataError
from mechscope.models import (
    DigitCNN,
    DigitCNNConfig,
    ModularMLP,
    ModularMLPConfig,
    TinyReLU,
    TinyReLUConfig,
    TrainConfig,
    build_seeded,
    train,
)
from mechscope.models.train import default_train_config, evaluate
from mechscope.models.train import random_shift

pytestmark = pytest.mark.usefixtures("single_thread")


def _blobs(n: int = 64, seed: int = 0) -> DataBundle:
    """Two separable Gaussian blobs in 2-D, as a classification bundle."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.3 + (y[:, None] * 2.0 - 1.0)
    return DataBundle(x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], {}, "classification", n_classes=2)


def _linear(seed: int = 0) -> nn.Linear:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Linear(2, 2)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_evaluate_returns_exact_accuracy_of_a_hand_set_model():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert evaluate(model, x, y, "classification") == {"test_accuracy": 0.75}


def test_evaluate_returns_exact_mse_and_squeezes_a_trailing_output_dim():
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.fill_(0.0)
    x = torch.tensor([[1.0], [2.0]])
    y = torch.tensor([1.0, 4.0])  # errors 1 and 0
    assert evaluate(model, x, y, "regression") == {"test_mse": 0.5}


def test_evaluate_batches_give_the_same_score_as_one_pass():
    data = _blobs(200)
    model = _linear()
    full = evaluate(model, data.x_test, data.y_test, "classification")
    chunked = evaluate(model, data.x_test, data.y_test, "classification", batch_size=7)
    assert full == chunked


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_restores_the_train_mode_and_builds_no_graph(training):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    data = _blobs()
    evaluate(model, data.x_test, data.y_test, "classification")
    assert model.training is training
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_rejects_float_class_targets_and_unknown_tasks():
    model = _linear()
    with pytest.raises(DataError, match="integer class indices"):
        evaluate(model, torch.zeros(3, 2), torch.zeros(3), "classification")
    with pytest.raises(DataError, match="task must be 'classification' or 'regression', got 'ranking'"):
        evaluate(model, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), "ranking")  # type: ignore[arg-type]


def test_evaluate_rejects_predictions_that_do_not_match_regression_targets():
    with pytest.raises(DataError, match=r"predictions have shape \(3, 2\) but regression targets have \(3,\)"):
        evaluate(nn.Linear(2, 2), torch.zeros(3, 2), torch.zeros(3), "regression")


def test_train_same_seed_gives_identical_weights_and_history():
    data = modular_data(3, n_train=256, n_test=64, seed=0)
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, seed=5)
    runs = []
    for _ in range(2):
        model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=4, hidden=4), seed=3)
        runs.append((train(model, data, config, progress=False), _state(model)))
    (first, w1), (second, w2) = runs
    assert first.history == second.history
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_train_same_seed_gives_identical_cnn_weights_with_shift_augmentation():
    data = digits_data("digits", seed=0)
    small = dataclasses.replace(
        data, x_train=data.x_train[:128], y_train=data.y_train[:128], x_test=data.x_test[:64], y_test=data.y_test[:64]
    )
    config = TrainConfig(epochs=1, batch_size=32, lr=4e-3, max_shift=1, seed=2)
    states = []
    for _ in range(2):
        model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, gap=True), seed=0)
        train(model, small, config, progress=False)
        states.append(_state(model))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_train_different_seeds_shuffle_differently():
    data = function_data("sum", n_train=512, n_test=64, seed=0)
    states = []
    for seed in (0, 1):
        model = build_seeded(TinyReLU, TinyReLUConfig(), seed=0)
        train(model, data, TrainConfig(epochs=1, batch_size=32, lr=1e-2, seed=seed), progress=False)
        states.append(_state(model))
    assert not torch.equal(states[0]["fc1.weight"], states[1]["fc1.weight"])


def test_train_leaves_the_global_rng_untouched():
    data = _blobs()
    model = _linear()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, data, TrainConfig(epochs=2, batch_size=8, seed=9), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_train_stops_early_once_the_train_metric_reaches_the_target():
    data = _blobs(256)
    model = _linear()
    result = train(model, data, TrainConfig(epochs=500, lr=0.1, full_batch=True, target_metric=1.0), progress=False)
    assert result.epochs_run < 500
    assert result.epochs_run == len(result.history)
    assert result.history[-1]["train_accuracy"] == 1.0
    assert result.metrics["train_accuracy"] == 1.0


def test_train_regression_early_stop_uses_mse_at_or_below_the_target():
    data = function_data("sum", n_train=4096, n_test=256, seed=0)
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed=0)
    result = train(model, data, TrainConfig(epochs=200, batch_size=256, lr=2e-2, target_metric=1e-3), progress=False)
    assert result.epochs_run < 200
    assert result.metrics["train_mse"] <= 1e-3


def test_train_records_one_history_entry_per_epoch_with_task_keys():
    data = function_data("weighted", n_train=300, n_test=50, seed=0)
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed=0)
    result = train(model, data, TrainConfig(epochs=3, batch_size=64), progress=False)
    assert [h["epoch"] for h in result.history] == [1.0, 2.0, 3.0]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_mse"}
    assert set(result.metrics) == {"train_mse", "test_mse"}
    assert result.metrics["test_mse"] == evaluate(model, data.x_test, data.y_test, "regression")["test_mse"]
    assert result.seconds > 0


@pytest.mark.parametrize("training", [True, False])
def test_train_restores_the_mode_it_found(training):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)).train(training)
    train(model, _blobs(), TrainConfig(epochs=1), progress=False)
    assert model.training is training


def test_train_sgd_with_momentum_lowers_the_loss():
    data = function_data("sum", n_train=2048, n_test=64, seed=1)
    model = build_seeded(TinyReLU, TinyReLUConfig(), seed=1)
    config = TrainConfig(epochs=3, batch_size=128, lr=3e-3, optimizer="sgd", momentum=0.9)
    result = train(model, data, config, progress=False)
    assert result.history[-1]["train_loss"] < 0.1 * result.history[0]["train_loss"]


def test_train_rejects_a_model_whose_logits_do_not_match_n_classes():
    data = modular_data(3, n_train=30, n_test=10)
    model = ModularMLP(ModularMLPConfig(modulus=3))
    model.output = nn.Linear(5, 4)
    with pytest.raises(DataError, match=r"n_classes=3"):
        train(model, data, TrainConfig(epochs=1), progress=False)


def test_train_a_lone_trailing_example_joins_the_previous_batch_for_batch_norm():
    data = digits_data("digits", seed=0)
    small = dataclasses.replace(data, x_train=data.x_train[:33], y_train=data.y_train[:33])
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, gap=True), seed=0)
    result = train(model, small, TrainConfig(epochs=1, batch_size=32), progress=False)
    assert result.epochs_run == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
        ({"lr": 0.0}, "lr must be a positive finite number, got 0.0"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of .* got 'rmsprop'"),
        ({"weight_decay": -1.0}, "weight_decay and momentum must be numbers >= 0"),
        ({"max_shift": -1}, "max_shift must be a non-negative integer"),
        ({"target_metric": float("inf")}, "target_metric must be a finite number or None"),
    ],
)
def test_train_config_rejects_invalid_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_default_train_config_picks_the_documented_settings_per_model():
    mod = modular_data(2, n_train=10, n_test=10)
    mlp = default_train_config(ModularMLP(ModularMLPConfig()), mod)
    assert (mlp.full_batch, mlp.lr, mlp.target_metric) == (True, 0.02, 1.0)
    fn = function_data("sum", n_train=10, n_test=10)
    relu = default_train_config(TinyReLU(TinyReLUConfig()), fn)
    assert (relu.optimizer, relu.batch_size, relu.lr, relu.epochs) == ("adam", 512, 0.02, 2)
    cnn28 = default_train_config(DigitCNN(DigitCNNConfig()), mod)
    cnn8 = default_train_config(DigitCNN(DigitCNNConfig(image_size=8)), mod)
    assert (cnn28.epochs, cnn28.max_shift, cnn8.epochs, cnn8.max_shift) == (10, 1, 30, 0)
    assert default_train_config(nn.Linear(2, 2), mod) == TrainConfig()


def test_random_shift_moves_each_image_by_at_most_max_shift_and_keeps_its_pixels():
    images = torch.zeros(50, 1, 6, 6)
    images[:, 0, 2:4, 2:4] = 1.0  # a 2x2 square away from the border
    shifted = random_shift(images, 1, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))
    rows = shifted[:, 0].sum(dim=2).argmax(dim=1)  # first lit row: 2 +- 1
    assert set(rows.tolist()) <= {1, 2, 3} and len(set(rows.tolist())) > 1
    assert torch.equal(random_shift(images, 0, torch.Generator()), images)


class _NaNAfter(nn.Module):
    """A 2 -> 2 linear model whose output turns NaN from its (n + 1)-th forward call on."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc = _linear()
        self.n, self.calls = n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.fc(x)
        return out * float("nan") if self.calls > self.n else out


def test_train_one_nan_input_stops_before_the_first_step():
    data = _blobs()
    data.x_train[3, 1] = float("nan")
    model = _NaNAfter(10**6)
    before = _state(model)
    with pytest.raises(DataError, match=r"Non-finite values in data\.x_train: 1 of 64 \(1 nan\); the first is nan at "
                       r"index \(3, 1\)\. .*pass check_finite=False to train\(\)"):
        train(model, data, TrainConfig(epochs=50, batch_size=8), progress=False)
    assert model.calls == 0  # not one epoch ran
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_train_check_finite_false_trains_into_nan_as_plain_pytorch_would():
    data = _blobs()
    data.x_train[3, 1] = float("nan")
    model = _linear()
    result = train(model, data, TrainConfig(epochs=2, batch_size=64), progress=False, check_finite=False)
    assert result.epochs_run == 2 and math.isnan(result.history[-1]["train_loss"])
    assert model.weight.isnan().all()


def test_train_stops_at_the_first_non_finite_loss_and_keeps_the_weights_before_it():
    data = _blobs()  # 32 training examples: 4 batches of 8 per epoch
    model = _NaNAfter(5)  # steps 1-5 are finite, step 6 (epoch 2, batch 2) is NaN
    initial = _state(model)
    with pytest.raises(DataError, match=r"^Non-finite value: the training loss at epoch 2, step 6 \(batch 2 of 4\) is "
                       r"nan\. Training diverged; the model keeps the weights it had before this step\. Lower the "
                       r"learning rate \(lr=0\.001; try lr=0\.0001\)"):
        train(model, data, TrainConfig(epochs=50, batch_size=8), progress=False)
    assert model.calls == 6 and model.training  # stopped at once; the mode was restored
    assert all(p.isfinite().all() for p in model.parameters())  # the NaN step was never applied
    assert not torch.equal(model.fc.weight, initial["fc.weight"])  # the five finite steps were


def test_train_diverging_learning_rate_is_reported_with_a_lower_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    y = x.sum(dim=1)
    data = DataBundle(x[:48], y[:48], x[48:], y[48:], {}, "regression")
    model = nn.Linear(2, 1)
    config = TrainConfig(epochs=200, full_batch=True, lr=10.0, optimizer="sgd")
    with pytest.raises(DataError, match=r"the training loss at epoch \d+, step \d+ \(batch 1 of 1\) is (inf|nan)\. "
                       r"Training diverged.*Lower the learning rate \(lr=10; try lr=1\)"):
        train(model, data, config, progress=False)

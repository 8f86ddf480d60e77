from __future__ import annotations

import pytest
import torch

from mechscope.data import modular_data
from mechscope.errors import ConfigError, DataError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded, train
from mechscope.models.train import default_train_config, evaluate

pytestmark = pytest.mark.usefixtures("single_thread")


def test_modular_mlp_article_config_has_five_hidden_blocks_of_five_units():
    model = ModularMLP(ModularMLPConfig())
    names = dict(model.named_modules())
    assert [f"hidden.{i}" for i in range(5)] == [n for n in names if n.count(".") == 1 and n.startswith("hidden.")]
    for i in range(5):
        assert isinstance(names[f"hidden.{i}.linear"], torch.nn.Linear)
        assert isinstance(names[f"hidden.{i}.act"], torch.nn.Tanh)
        assert names[f"hidden.{i}.linear"].out_features == 5
    assert names["hidden.0.linear"].in_features == 4
    assert (names["output"].in_features, names["output"].out_features) == (5, 2)
    assert "hidden.5" not in names


def test_modular_mlp_forward_returns_logits_per_class():
    model = ModularMLP(ModularMLPConfig(modulus=7, n_layers=4, hidden=9, activation="relu"))
    assert isinstance(model.hidden[0].act, torch.nn.ReLU)
    assert model(torch.zeros(3, 14)).shape == (3, 7)


def test_modular_mlp_block_output_is_the_post_activation():
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3), seed=0)
    x = torch.eye(6)[:, :6]
    expected = torch.tanh(model.hidden[0].linear(x))
    assert torch.equal(model.hidden[0](x), expected)


def test_modular_mlp_pairs_encoding_matches_one_hot_logits():
    one_hot = build_seeded(ModularMLP, ModularMLPConfig(modulus=5), seed=1)
    pairs = ModularMLP(ModularMLPConfig(modulus=5, encoding="pairs"))
    pairs.load_state_dict(one_hot.state_dict())
    data_pairs = modular_data(5, encoding="pairs", seed=0)
    data_hot = modular_data(5, encoding="one_hot", seed=0)
    assert torch.allclose(pairs(data_pairs.x_train), one_hot(data_hot.x_train))


def test_modular_mlp_rejects_input_of_the_wrong_width():
    model = ModularMLP(ModularMLPConfig(modulus=3))
    with pytest.raises(DataError, match=r"expects one-hot inputs of shape \(batch, 6\), got \(2, 4\)"):
        model(torch.zeros(2, 4))


def test_modular_mlp_pairs_rejects_out_of_range_values():
    model = ModularMLP(ModularMLPConfig(modulus=3, encoding="pairs"))
    with pytest.raises(DataError, match=r"must lie in 0\.\.2"):
        model(torch.tensor([[0, 3]]))
    with pytest.raises(DataError, match="integer pairs"):
        model(torch.zeros(2, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modulus": 1}, "modulus must be an integer >= 2, got 1"),
        ({"n_layers": 2}, "n_layers counts input and output layers .* got 2"),
        ({"hidden": 0}, "hidden must be a positive integer, got 0"),
        ({"activation": "sigmoid"}, "activation must be one of .*'tanh'.* got 'sigmoid'"),
        ({"encoding": "binary"}, "encoding must be one of .* got 'binary'"),
    ],
)
def test_modular_mlp_config_rejects_invalid_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModularMLPConfig(**kwargs)


def test_modular_mlp_rejects_a_foreign_config():
    with pytest.raises(ConfigError, match="needs a ModularMLPConfig"):
        ModularMLP({"modulus": 2})  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_modular_mlp_article_setup_reaches_full_held_out_accuracy(seed):
    # Seed 000: n_layers=7 (5 hidden tanh layers of 5), mod 2, 10,000 random train/test samples.
    data = modular_data(2, n_train=10_000, n_test=10_000, seed=seed)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2), seed)
    result = train(model, data, default_train_config(model, data), progress=False)
    assert result.metrics["test_accuracy"] == 1.0
    assert result.epochs_run <= 200  # measured 3-47 full-batch epochs over 20 seeds


def test_modular_mlp_mod5_sampled_reaches_99_percent_held_out():
    data = modular_data(5, n_train=10_000, n_test=10_000, seed=0)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=5, hidden=16), seed=0)
    result = train(model, data, default_train_config(model, data), progress=False)
    assert result.metrics["test_accuracy"] >= 0.99
    every_pair = modular_data(5, n_train=None, n_test=None, test_fraction=0.5, seed=0)
    x_all = torch.cat([every_pair.x_train, every_pair.x_test])
    y_all = torch.cat([every_pair.y_train, every_pair.y_test])
    assert evaluate(model, x_all, y_all, "classification")["test_accuracy"] == 1.0


def test_modular_mlp_mod5_relu_variant_reaches_99_percent_held_out():
    data = modular_data(5, n_train=10_000, n_test=10_000, seed=0)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=5, hidden=16, activation="relu"), seed=0)
    result = train(model, data, default_train_config(model, data), progress=False)
    assert result.metrics["test_accuracy"] >= 0.99

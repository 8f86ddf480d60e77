from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.models import (
    DigitCNN,
    DigitCNNConfig,
    ModularMLP,
    ModularMLPConfig,
    TinyReLU,
    TinyReLUConfig,
    build_seeded,
    register_model,
)
from mechscope.models.registry import MODEL_REGISTRY, build_model, config_from_dict, model_spec


@dataclass(frozen=True)
class _PairConfig:
    width: int = 2  # units of the only layer
    sizes: tuple[int, ...] | None = None  # exercises list -> tuple for optional tuples


class _Pair(nn.Module):
    def __init__(self, config: _PairConfig) -> None:
        super().__init__()
        self.config = config
        self.fc = nn.Linear(config.width, config.width)


@pytest.fixture
def pair_registered():
    name = register_model(_Pair, _PairConfig)
    yield name
    MODEL_REGISTRY.pop(name)


def test_registry_lists_the_three_target_models():
    assert MODEL_REGISTRY["ModularMLP"] == (ModularMLP, ModularMLPConfig)
    assert MODEL_REGISTRY["TinyReLU"] == (TinyReLU, TinyReLUConfig)
    assert MODEL_REGISTRY["DigitCNN"] == (DigitCNN, DigitCNNConfig)


@pytest.mark.parametrize(
    "model",
    [
        build_seeded(ModularMLP, ModularMLPConfig(modulus=5, hidden=16, activation="relu"), seed=0),
        build_seeded(TinyReLU, TinyReLUConfig(n_inputs=3, hidden=2, bias_init=(1.0, 2.0)), seed=0),
        build_seeded(DigitCNN, DigitCNNConfig(image_size=8, gap=True), seed=0),
    ],
    ids=["ModularMLP", "TinyReLU", "DigitCNN"],
)
def test_build_model_round_trips_the_spec_through_json(model):
    name, config_dict = model_spec(model)
    restored = build_model(name, json.loads(json.dumps(config_dict)), seed=0)
    assert type(restored) is type(model)
    assert restored.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values()))


def test_build_model_unknown_name_lists_known_models():
    message = r"unknown model class 'DigitCnn'\. Did you mean 'DigitCNN'\?.*DigitCNN.*ModularMLP.*TinyReLU"
    with pytest.raises(ConfigError, match=message):
        build_model("DigitCnn", {})


def test_build_model_rejects_unknown_fields_naming_the_valid_ones():
    message = r"ModularMLPConfig has no field\(s\) 'width'; valid fields: modulus, n_layers"
    with pytest.raises(ConfigError, match=message):
        build_model("ModularMLP", {"width": 3})


def test_build_model_passes_config_validation_errors_through():
    with pytest.raises(ConfigError, match="modulus must be an integer >= 2"):
        build_model("ModularMLP", {"modulus": 1})


def test_config_from_dict_turns_lists_into_tuples_for_optional_tuple_fields():
    assert config_from_dict(_PairConfig, {"sizes": [1, 2]}) == _PairConfig(sizes=(1, 2))
    assert config_from_dict(DigitCNNConfig, {"channels": [4, 8], "image_size": 8}).channels == (4, 8)


@dataclass(frozen=True)
class _RequiredConfig:
    depth: int  # no default: a dict without it cannot build the config


def test_config_from_dict_reports_missing_required_fields():
    with pytest.raises(ConfigError, match="cannot build _RequiredConfig from {}: .*depth"):
        config_from_dict(_RequiredConfig, {})


def test_register_model_makes_a_custom_model_buildable(pair_registered):
    model = build_model(pair_registered, {"width": 3, "sizes": [1]})
    assert isinstance(model, _Pair) and model.config == _PairConfig(3, (1,))
    assert model_spec(model) == ("_Pair", {"width": 3, "sizes": (1,)})


def test_register_model_refuses_to_rebind_a_taken_name():
    with pytest.raises(ConfigError, match="'DigitCNN' is already registered"):
        register_model(_Pair, _PairConfig, name="DigitCNN")


def test_register_model_requires_a_dataclass_config():
    with pytest.raises(ConfigError, match="config_cls must be a dataclass type"):
        register_model(_Pair, dict)


def test_model_spec_rejects_unregistered_models():
    with pytest.raises(UnsupportedModelError, match="Linear is not registered; known models: "):
        model_spec(nn.Linear(2, 2))


def test_build_seeded_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    first = build_seeded(ModularMLP, ModularMLPConfig(), seed=11)
    assert torch.equal(torch.rand(2), expected)
    second = build_seeded(ModularMLP, ModularMLPConfig(), seed=11)
    third = build_seeded(ModularMLP, ModularMLPConfig(), seed=12)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.output.weight, third.output.weight)

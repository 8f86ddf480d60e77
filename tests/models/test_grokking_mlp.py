from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from mechscope.capture import layer_names
from mechscope.errors import ConfigError, DataError
from mechscope.models import GrokkingMLP, GrokkingMLPConfig, build_seeded
from mechscope.models.registry import MODEL_REGISTRY, build_model, model_spec


def test_grokking_mlp_maps_pairs_to_modulus_logits():
    model = GrokkingMLP(GrokkingMLPConfig(modulus=7, d_embed=4, width=8))
    out = model(torch.tensor([[0, 6], [3, 3]]))
    assert out.shape == (2, 7)
    assert out.dtype == torch.float32


def test_grokking_mlp_layer_names_follow_the_documented_layout():
    model = GrokkingMLP(GrokkingMLPConfig(modulus=5))
    assert layer_names(model) == ["embed", "hidden", "act", "unembed"]
    assert model.hidden.in_features == 2 * model.config.d_embed


def test_grokking_mlp_sum_combine_is_symmetric_in_a_and_b():
    model = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=11, combine="sum"), seed=0)
    x = torch.randint(0, 11, (20, 2), generator=torch.Generator().manual_seed(0))
    assert model.hidden.in_features == model.config.d_embed
    assert torch.allclose(model(x), model(x.flip(1)))


def test_grokking_mlp_forward_embeddings_matches_forward():
    model = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=7), seed=1)
    x = torch.tensor([[1, 2], [6, 0]])
    assert torch.equal(model(x), model.forward_embeddings(model.embed(x)))


def test_grokking_mlp_is_registered_and_rebuilds_from_json():
    assert MODEL_REGISTRY["GrokkingMLP"] == (GrokkingMLP, GrokkingMLPConfig)
    model = GrokkingMLP(GrokkingMLPConfig(modulus=13, width=32, combine="sum"))
    name, config = model_spec(model)
    rebuilt = build_model(name, json.loads(json.dumps(config)))
    assert isinstance(rebuilt, GrokkingMLP)
    assert asdict(rebuilt.config) == asdict(model.config)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modulus": 1}, "modulus must be an integer >= 2"),
        ({"width": 0}, "width must be an integer >= 1"),
        ({"d_embed": 2.5}, "d_embed must be an integer"),
        ({"combine": "product"}, "combine must be one of"),
    ],
)
def test_grokking_mlp_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GrokkingMLPConfig(**kwargs)


def test_grokking_mlp_rejects_one_hot_floats_and_out_of_range_pairs():
    model = GrokkingMLP(GrokkingMLPConfig(modulus=5))
    with pytest.raises(DataError, match="encoding='pairs'"):
        model(torch.zeros(3, 10))
    with pytest.raises(DataError, match=r"0\.\.4"):
        model(torch.tensor([[0, 5]]))

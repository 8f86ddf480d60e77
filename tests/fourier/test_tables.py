from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.errors import ConfigError, LayerNameError, UnsupportedModelError
from mechscope.fourier.tables import (
    all_pairs,
    embedding_matrix,
    embedding_parameter,
    encode_pairs,
    logit_table,
    neuron_table,
)
from mechscope.models import GrokkingMLP, GrokkingMLPConfig, ModularMLP, ModularMLPConfig, build_seeded


def test_all_pairs_is_a_major():
    pairs = all_pairs(3)
    assert pairs.tolist()[:4] == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert pairs.shape == (9, 2) and pairs.dtype == torch.int64


def test_logit_table_matches_direct_forward_for_pairs_and_one_hot_models():
    grok = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=5, d_embed=4, width=8), seed=0)
    table = logit_table(grok)
    assert table.shape == (5, 5, 5)
    assert torch.allclose(table[2, 4], grok(torch.tensor([[2, 4]]))[0].detach())
    mlp = build_seeded(ModularMLP, ModularMLPConfig(modulus=5, hidden=6), seed=0)
    x = encode_pairs(torch.tensor([[3, 1]]), 5, "one_hot")
    assert torch.allclose(logit_table(mlp)[3, 1], mlp(x)[0].detach())


def test_logit_table_restores_training_mode():
    model = GrokkingMLP(GrokkingMLPConfig(modulus=5)).train()
    logit_table(model)
    assert model.training


def test_logit_table_needs_a_modulus_for_models_without_config():
    with pytest.raises(ConfigError, match="pass modulus=p"):
        logit_table(nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 5)))
    model = nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 5))
    assert logit_table(model, 5).shape == (5, 5, 5)


def test_neuron_table_returns_a_grid_per_unit_and_names_bad_layers():
    model = GrokkingMLP(GrokkingMLPConfig(modulus=7, width=10))
    assert neuron_table(model, "act").shape == (7, 7, 10)
    with pytest.raises(LayerNameError, match="act"):
        neuron_table(model, "acts")


def test_embedding_parameter_finds_embeddings_and_one_hot_first_layers():
    assert embedding_parameter(GrokkingMLP(GrokkingMLPConfig(modulus=7))).name == "embed.weight"
    found = embedding_parameter(ModularMLP(ModularMLPConfig(modulus=7)))
    assert (found.name, found.axis, found.modulus) == ("hidden.0.linear.weight", 1, 7)
    with pytest.raises(UnsupportedModelError, match="no nn.Embedding"):
        embedding_parameter(nn.Linear(3, 7), 7)


def test_embedding_matrix_puts_the_a_and_b_blocks_side_by_side():
    model = ModularMLP(ModularMLPConfig(modulus=3, n_layers=3, hidden=2))
    weight = model.hidden[0].linear.weight.detach()  # (unit, 2p)
    emb = embedding_matrix(model)
    assert emb.shape == (3, 4)
    assert torch.equal(emb[:, :2], weight[:, :3].T)  # a block: one column per unit
    assert torch.equal(emb[:, 2:], weight[:, 3:].T)  # b block

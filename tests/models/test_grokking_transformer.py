"""GrokkingTransformer: its hook points hold what a manual forward computes; configs are checked."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from mechscope.capture import capture
from mechscope.errors import ConfigError, DataError
from mechscope.models.registry import build_model, model_spec
from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig

POINTS = ["embed", "pos_embed", "blocks.0.resid_pre", "blocks.0.attn.scores", "blocks.0.attn.pattern",
          "blocks.0.attn.z", "blocks.0.attn.heads", "blocks.0.attn", "blocks.0.resid_mid", "blocks.0.mlp.hidden",
          "blocks.0.mlp.act", "blocks.0.mlp", "blocks.0.resid_post", "unembed"]


def _manual(model: GrokkingTransformer, pairs: Tensor) -> dict[str, Tensor]:
    """Every hook point computed by hand from the weights (one block, no LayerNorm)."""
    c = model.config
    batch, h, dh = pairs.shape[0], c.n_heads, c.d_head
    out: dict[str, Tensor] = {}
    out["embed"] = model.embed.weight[pairs]
    tokens = torch.cat([out["embed"], model.equals.expand(batch, 1, -1)], dim=1)
    out["pos_embed"] = model.pos_embed.weight.expand(batch, -1, -1)
    resid = out["blocks.0.resid_pre"] = tokens + out["pos_embed"]
    attn = model.blocks[0].attn
    q = (resid @ attn.query.weight.T).view(batch, 3, h, dh)
    k = (resid @ attn.key.weight.T).view(batch, 3, h, dh)
    v = (resid @ attn.value.weight.T).view(batch, 3, h, dh)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    out["blocks.0.attn.scores"] = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    uniform = causal / causal.sum(dim=1, keepdim=True)
    rate = c.attention_rate
    out["blocks.0.attn.pattern"] = rate * scores.masked_fill(~causal, -math.inf).softmax(-1) + (1 - rate) * uniform
    out["blocks.0.attn.z"] = torch.einsum("bhqk,bkhd->bqhd", out["blocks.0.attn.pattern"], v)
    out["blocks.0.attn.heads"] = torch.einsum("bqhd,hdm->bqhm", out["blocks.0.attn.z"], attn.output)
    out["blocks.0.attn"] = out["blocks.0.attn.heads"].sum(dim=2)
    resid = out["blocks.0.resid_mid"] = resid + out["blocks.0.attn"]
    mlp = model.blocks[0].mlp
    out["blocks.0.mlp.hidden"] = resid @ mlp.hidden.weight.T + mlp.hidden.bias
    out["blocks.0.mlp.act"] = out["blocks.0.mlp.hidden"].relu()
    out["blocks.0.mlp"] = out["blocks.0.mlp.act"] @ mlp.out.weight.T + mlp.out.bias
    resid = out["blocks.0.resid_post"] = resid + out["blocks.0.mlp"]
    out["unembed"] = resid @ model.unembed.weight.T
    return out


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_every_hook_point_matches_a_manual_forward(rate: float) -> None:
    torch.manual_seed(0)
    model = GrokkingTransformer(GrokkingTransformerConfig(modulus=7, d_model=12, n_heads=3, d_mlp=20,
                                                          attention_rate=rate)).eval()
    pairs = torch.tensor([[0, 0], [6, 3], [2, 5]])
    with torch.no_grad(), capture(model, POINTS) as store:
        logits = model(pairs)
        manual = _manual(model, pairs)
    for name in POINTS:
        assert torch.allclose(store.act(name), manual[name], atol=1e-5), name
    assert torch.allclose(logits, manual["unembed"][:, -1], atol=1e-5)


def test_layer_norm_and_blocks_round_trip_through_the_registry() -> None:
    config = GrokkingTransformerConfig(modulus=5, d_model=8, n_heads=2, d_mlp=8, n_layers=2, layer_norm=True)
    model = GrokkingTransformer(config)
    name, fields = model_spec(model)
    rebuilt = build_model(name, fields)
    assert isinstance(rebuilt, GrokkingTransformer) and rebuilt.config == config
    assert isinstance(model.ln_final, torch.nn.LayerNorm) and len(model.blocks) == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"d_model": 10, "n_heads": 4}, "multiple of n_heads"),
    ({"attention_rate": 1.5}, "attention_rate"),
    ({"modulus": 1}, "modulus"),
    ({"layer_norm": "yes"}, "layer_norm"),
])
def test_bad_configs_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GrokkingTransformerConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_are_refused() -> None:
    model = GrokkingTransformer(GrokkingTransformerConfig(modulus=5, d_model=8, n_heads=2, d_mlp=8))
    with pytest.raises(DataError, match="pairs"):
        model(torch.tensor([[1, 2, 3]]))
    with pytest.raises(DataError, match="0..4"):
        model(torch.tensor([[1, 5]]))

"""Attention patterns of our transformer, nn.MultiheadAttention and Hugging Face models."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mechscope.errors import UnsupportedModelError
from mechscope.lens.attention import attention_patterns
from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
from tests.zoo import DictNet, tiny_gpt2


def _model(rate: float) -> GrokkingTransformer:
    torch.manual_seed(0)
    return GrokkingTransformer(GrokkingTransformerConfig(modulus=7, d_model=8, n_heads=2, d_mlp=8, attention_rate=rate))


def test_rate_zero_is_uniform_and_rate_one_is_the_softmax() -> None:
    pairs = torch.tensor([[1, 2], [5, 3]])
    uniform = attention_patterns(_model(0.0), pairs)["blocks.0.attn.pattern"]
    expected = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])
    assert torch.allclose(uniform, expected.expand(2, 2, 3, 3))
    model = _model(1.0)
    pattern = attention_patterns(model, pairs)["blocks.0.attn.pattern"]
    # by hand: q k^T / sqrt(d_head) with the causal mask, softmax over keys
    with torch.no_grad():
        tokens = torch.cat([model.embed(pairs), model.equals.expand(2, 1, -1)], dim=1) + model.pos_embed.weight
        attn = model.blocks[0].attn
        q = attn.query(tokens).view(2, 3, 2, 4)
        k = attn.key(tokens).view(2, 3, 2, 4)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / 2.0
        scores = scores.masked_fill(~torch.ones(3, 3, dtype=torch.bool).tril(), float("-inf"))
    assert torch.allclose(pattern, scores.softmax(dim=-1), atol=1e-6)
    mixed = attention_patterns(_model(0.25), pairs)["blocks.0.attn.pattern"]
    assert torch.allclose(mixed.sum(dim=-1), torch.ones(2, 2, 3), atol=1e-6)


class MHANet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.attn(x, x, x, need_weights=False)
        return self.head(out[:, -1])


def test_multihead_attention_weights_per_head_and_output_unchanged() -> None:
    model = MHANet().eval()
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    before = model(x)
    patterns = attention_patterns(model, x)
    _, manual = model.attn(x, x, x, need_weights=True, average_attn_weights=False)
    assert torch.allclose(patterns["attn"], manual, atol=1e-6)
    assert torch.equal(model(x), before)
    assert not model.attn._forward_pre_hooks and not model.attn._forward_hooks


def test_hugging_face_attentions() -> None:
    model = tiny_gpt2()
    model.set_attn_implementation("eager")
    ids = torch.randint(0, 23, (2, 6), generator=torch.Generator().manual_seed(0))
    patterns = attention_patterns(model, ids)
    assert list(patterns) == ["attentions.0", "attentions.1"]
    assert patterns["attentions.0"].shape == (2, 2, 6, 6)
    assert torch.allclose(patterns["attentions.1"].sum(dim=-1), torch.ones(2, 2, 6), atol=1e-5)
    assert float(patterns["attentions.0"].triu(1).abs().max()) == 0.0  # causal


def test_a_model_without_attention_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="no attention"):
        attention_patterns(DictNet(), torch.randn(1, 1, 8, 8))

"""Direct logit attribution sums to the logit when the components cover the residual stream."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import UnsupportedModelError
from mechscope.lens.direct import direct_logit_attribution
from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
from tests.zoo import tiny_gpt2


@pytest.mark.parametrize("layer_norm", [False, True])
def test_components_sum_to_the_logit_difference(layer_norm: bool) -> None:
    torch.manual_seed(0)
    config = GrokkingTransformerConfig(modulus=11, d_model=16, n_heads=2, d_mlp=32, n_layers=2, layer_norm=layer_norm)
    model = GrokkingTransformer(config)
    pairs = torch.randint(0, 11, (6, 2), generator=torch.Generator().manual_seed(1))
    answer, wrong = pairs.sum(dim=1) % 11, (pairs.sum(dim=1) + 1) % 11
    parts = ["blocks.0.resid_pre", "blocks.0.attn.heads", "blocks.0.mlp", "blocks.1.attn.heads", "blocks.1.mlp"]
    dla = direct_logit_attribution(model, pairs, parts, unembed="unembed", answer=answer, wrong=wrong,
                                   final_norm="ln_final" if layer_norm else None)
    with torch.no_grad():
        logits = model(pairs)
    expected = logits.gather(1, answer[:, None])[:, 0] - logits.gather(1, wrong[:, None])[:, 0]
    assert torch.allclose(dla.logit, expected, atol=1e-5)
    assert dla.remainder.abs().max() < 1e-4
    assert dla.labels[1:3] == ["blocks.0.attn.heads.0", "blocks.0.attn.heads.1"]


def test_one_head_by_hand() -> None:
    torch.manual_seed(0)
    model = GrokkingTransformer(GrokkingTransformerConfig(modulus=5, d_model=8, n_heads=2, d_mlp=8))
    pairs = torch.tensor([[1, 3]])
    dla = direct_logit_attribution(model, pairs, ["blocks.0.attn.heads"], unembed="unembed", answer=4)
    from mechscope.capture import capture
    with torch.no_grad(), capture(model, ["blocks.0.attn.heads"]) as store:
        model(pairs)
    head1 = store.act("blocks.0.attn.heads")[0, -1, 1]
    assert float(dla.contributions[0, 1]) == pytest.approx(float((head1 @ model.unembed.weight[4]).detach()), abs=1e-6)


def test_gpt2_blocks_with_layer_norm() -> None:
    model = tiny_gpt2()
    ids = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(0))
    parts = ["transformer.wte", "transformer.wpe"] + [f"transformer.h.{i}.{m}" for i in range(2) for m in ("attn", "mlp")]
    dla = direct_logit_attribution(model, ids, parts, unembed="lm_head", final_norm="transformer.ln_f", answer=3)
    assert dla.remainder.abs().max() < 1e-4  # embeddings + every attention and MLP output cover the stream


def test_nonlinear_final_norm_is_refused() -> None:
    torch.manual_seed(0)
    model = GrokkingTransformer(GrokkingTransformerConfig(modulus=5, d_model=8, n_heads=2, d_mlp=8))
    model.ln_final = torch.nn.Tanh()  # type: ignore[assignment]
    with pytest.raises(UnsupportedModelError, match="LayerNorm"):
        direct_logit_attribution(model, torch.tensor([[1, 2]]), ["blocks.0.mlp"], unembed="unembed", answer=3,
                                 final_norm="ln_final")

"""The logit lens against the models' own logits and hand computations."""

from __future__ import annotations

import pytest
import torch

from mechscope.errors import DataError
from mechscope.lens.logit_lens import logit_lens
from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
from tests.zoo import tiny_gpt2


def test_last_layer_of_gpt2_reads_the_model_logits() -> None:
    model = tiny_gpt2()
    ids = torch.randint(0, 23, (3, 7), generator=torch.Generator().manual_seed(0))
    lens = logit_lens(model, ids, ["transformer.h.0", "transformer.h.1"], unembed="lm_head",
                      final_norm="transformer.ln_f")
    with torch.no_grad():
        logits = model(ids).logits  # (batch, pos, vocab)
    assert torch.equal(lens.top[-1], logits.argmax(dim=-1))  # default answer: the model's prediction
    assert (lens.rank[-1] == 0).all()
    chosen = logits.gather(-1, lens.answer[..., None])[..., 0]
    assert torch.allclose(lens.logit[-1], chosen, atol=1e-5)
    # layer 0 by hand: ln_f then lm_head on the first block's output
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states[1]  # after block 0
        manual = model.lm_head(model.transformer.ln_f(hidden))
    assert torch.allclose(lens.logit[0], manual.gather(-1, lens.answer[..., None])[..., 0], atol=1e-5)
    ranks = (manual > manual.gather(-1, lens.answer[..., None])).sum(dim=-1)
    assert torch.equal(lens.rank[0], ranks)


def test_transformer_resid_post_reads_its_answer() -> None:
    torch.manual_seed(0)
    model = GrokkingTransformer(GrokkingTransformerConfig(modulus=7, d_model=8, n_heads=2, d_mlp=16))
    pairs = torch.tensor([[1, 2], [3, 6]])
    labels = pairs.sum(dim=1) % 7
    lens = logit_lens(model, pairs, ["blocks.0.resid_pre", "blocks.0.resid_post"], unembed="unembed", answer=labels)
    with torch.no_grad():
        logits = model(pairs)
    assert torch.allclose(lens.logit[1, :, -1], logits.gather(1, labels[:, None])[:, 0], atol=1e-6)
    assert torch.allclose(lens.probability[1, :, -1].float(), logits.softmax(dim=1).gather(1, labels[:, None])[:, 0],
                          atol=1e-6)
    assert lens.rank.shape == (2, 2, 3)


def test_bad_answer_shape_is_one_line() -> None:
    model = tiny_gpt2()
    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(DataError, match="answer must be"):
        logit_lens(model, ids, "transformer.h.0", unembed="lm_head", final_norm="transformer.ln_f",
                   answer=torch.zeros(3, dtype=torch.long))

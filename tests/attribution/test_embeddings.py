from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.attribution import GradCAM, GradientXInput, IntegratedGradients, Saliency
from mechscope.attribution.embeddings import is_token_ids, token_embedding
from mechscope.capture import patch
from mechscope.errors import DataError, UnsupportedModelError
from tests.zoo import TokenGRU, tiny_gpt2

# At 128 midpoint steps the Riemann error of the path integral is ~1e-6 on these models
# (measured: 2.7e-6 at 64 steps, 1.8e-7 at 256) against score differences of 0.1-0.5.
COMPLETENESS_ATOL = 1e-4


def _last_logits(out: object) -> torch.Tensor:
    return out.logits[:, -1]  # type: ignore[attr-defined]


def _tokens(vocab: int, shape: tuple[int, int], seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _score_at_zero_embeddings(model: nn.Module, embedding: str, tokens: torch.Tensor, read) -> torch.Tensor:
    with torch.no_grad(), patch(model, {embedding: lambda out, hook: torch.zeros_like(out)}):
        return read(model(tokens))


def test_integrated_gradients_per_token_is_complete_on_a_gru():
    model = TokenGRU().eval()
    tokens = _tokens(11, (4, 6), 0)
    target = torch.tensor([0, 1, 2, 1])
    ig = IntegratedGradients(model, steps=128).attribute(tokens, target)
    assert ig.shape == (4, 6)  # one score per token
    with torch.no_grad():
        at_x = model(tokens).gather(1, target[:, None])[:, 0]
    at_baseline = _score_at_zero_embeddings(model, "embed", tokens, lambda out: out.gather(1, target[:, None])[:, 0])
    torch.testing.assert_close(ig.sum(dim=1), at_x - at_baseline, rtol=0, atol=COMPLETENESS_ATOL)
    assert float((at_x - at_baseline).abs().min()) > 10 * COMPLETENESS_ATOL  # the check is not vacuous


def test_gradient_x_input_on_a_gru_equals_autograd_on_the_embeddings():
    model = TokenGRU().eval()
    tokens = _tokens(11, (3, 5), 1)
    embeds = model.embed(tokens).detach().requires_grad_(True)
    states, _ = model.gru(embeds)
    score = model.head(states[:, -1])[:, 2].sum()
    (grad,) = torch.autograd.grad(score, embeds)
    expected = (grad * embeds).sum(dim=-1).detach()
    torch.testing.assert_close(GradientXInput(model).attribute(tokens, 2), expected)


def test_integrated_gradients_on_gpt2_last_token_logit_is_complete():
    model = tiny_gpt2()
    assert token_embedding(model) == "transformer.wte"
    ids = _tokens(23, (3, 7), 2)
    ig = IntegratedGradients(model, steps=128, output=_last_logits).attribute(ids, target=5)
    assert ig.shape == (3, 7)
    with torch.no_grad():
        at_x = model(ids).logits[:, -1, 5]
    at_baseline = _score_at_zero_embeddings(model, "transformer.wte", ids, lambda out: out.logits[:, -1, 5])
    torch.testing.assert_close(ig.sum(dim=1), at_x - at_baseline, rtol=0, atol=COMPLETENESS_ATOL)


def test_gradient_x_input_on_gpt2_equals_autograd_through_inputs_embeds():
    model = tiny_gpt2()
    ids = _tokens(23, (2, 6), 3)
    embeds = model.transformer.wte(ids).detach().requires_grad_(True)
    score = model(inputs_embeds=embeds).logits[:, -1, 7].sum()
    (grad,) = torch.autograd.grad(score, embeds)
    expected = (grad * embeds).sum(dim=-1).detach()
    got = GradientXInput(model, output=_last_logits).attribute(ids, 7)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_token_attribution_leaves_no_hooks_and_rejects_what_it_cannot_explain():
    model = TokenGRU().eval()
    tokens = _tokens(11, (2, 4), 4)
    IntegratedGradients(model, steps=4).attribute(tokens)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert is_token_ids(tokens) and not is_token_ids(tokens.float())
    with pytest.raises(DataError, match="token ids must lie in 0..10 of embedding 'embed'; got ids from 0 to 11"):
        GradientXInput(model).attribute(torch.tensor([[0, 11]]))
    with pytest.raises(UnsupportedModelError, match="Saliency has no embedding-space form for token ids"):
        Saliency(model).attribute(tokens)
    with pytest.raises(UnsupportedModelError, match="Grad-CAM explains images"):
        GradCAM(model, "gru").attribute(tokens)
    no_embedding = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(DataError, match="token ids need a model with an nn.Embedding, or embedding="):
        GradientXInput(no_embedding).attribute(tokens)
    with pytest.raises(UnsupportedModelError, match="has no nn.Embedding .* pass embedding="):
        token_embedding(no_embedding)

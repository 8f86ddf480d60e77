from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mechscope.errors import DataError, UnsupportedModelError
from mechscope.fourier.clock_pizza import (
    ClockPizza,
    clock_or_pizza,
    correct_logit_table,
    cosine_symmetricity,
    distance_irrelevance,
    gradient_symmetricity,
)
from mechscope.fourier.construct import gromov_modular_mlp
from mechscope.models import ModularMLP, ModularMLPConfig

P = 13


def _unit(values: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-(population)-variance version of a function on Z_p."""
    v = values - values.mean()
    return v / v.std(unbiased=False)


def _sum_and_distance_table(alpha: float, beta: float) -> torch.Tensor:
    """L[a, b] = alpha * u((a + b) mod p) + beta * v((a - b) mod p) with u, v zero-mean unit-variance."""
    gen = torch.Generator().manual_seed(0)
    u = _unit(torch.randn(P, generator=gen, dtype=torch.float64))
    v = _unit(torch.randn(P, generator=gen, dtype=torch.float64))
    r = torch.arange(P)
    s, d = (r[:, None] + r[None, :]) % P, (r[:, None] - r[None, :]) % P
    return alpha * u[s] + beta * v[d]


@pytest.mark.parametrize(
    ("alpha", "beta", "expected"),
    [(1.0, 0.0, 1.0), (0.0, 1.0, 0.0), (3.0, 4.0, 0.6), (4.0, 3.0, 0.8)],
)
def test_distance_irrelevance_matches_the_closed_form(alpha, beta, expected):
    # for odd p, (a + b, a - b) covers the grid once, so q = alpha / sqrt(alpha^2 + beta^2)
    assert distance_irrelevance(_sum_and_distance_table(alpha, beta)) == pytest.approx(expected, abs=1e-12)


def test_distance_irrelevance_reads_the_correct_class_of_a_logit_table():
    L = _sum_and_distance_table(3.0, 4.0)
    r = torch.arange(P)
    labels = (r[:, None] + r[None, :]) % P
    logits = torch.zeros(P, P, P, dtype=torch.float64).scatter(2, labels[..., None], L[..., None])
    assert torch.equal(correct_logit_table(logits), L)
    assert distance_irrelevance(logits) == pytest.approx(0.6, abs=1e-12)


def test_distance_irrelevance_of_a_pizza_like_table_is_low():
    r = torch.arange(P, dtype=torch.float64)
    L = torch.cos(math.pi * 3 * (r[:, None] - r[None, :]) / P).abs()  # |cos(w (a - b) / 2)|, the pizza's signature
    assert distance_irrelevance(L) == pytest.approx(0.0, abs=1e-12)


def test_distance_irrelevance_rejects_a_constant_table():
    with pytest.raises(DataError, match="constant"):
        distance_irrelevance(torch.ones(P, P))


class _EmbedThen(nn.Module):
    """Embedding (batch, 2, d) followed by a head that sees the two operand embeddings."""

    def __init__(self, head: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(P, 6)
        self.readout = nn.Linear(6, P)
        self.head = head
        self.config = type("Config", (), {"modulus": P})()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)  # (batch, 2, d)
        if self.head == "sum":
            return self.readout(torch.relu(e[:, 0] + e[:, 1]))
        if self.head == "only_a":
            return self.readout(torch.tanh(e[:, 0]))
        return self.readout(e[:, 0] * e[:, 1])  # bilinear


def test_gradient_symmetricity_is_one_for_summed_embeddings():
    assert gradient_symmetricity(_EmbedThen("sum")) == pytest.approx(1.0, abs=1e-9)


def test_gradient_symmetricity_is_zero_when_b_is_ignored():
    assert gradient_symmetricity(_EmbedThen("only_a")) == pytest.approx(0.0, abs=1e-12)


def test_gradient_symmetricity_matches_a_hand_derivation_for_a_bilinear_head():
    model = _EmbedThen("bilinear")
    gen = torch.Generator().manual_seed(3)
    triplets = torch.randint(0, P, (50, 3), generator=gen)
    e = model.embed.weight.detach()
    w = model.readout.weight.detach()[triplets[:, 2]]  # (batch, d)
    # Q = sum_i w_i e_a,i e_b,i  =>  dQ/de_a = w * e_b and dQ/de_b = w * e_a
    expected = cosine_symmetricity(w * e[triplets[:, 1]], w * e[triplets[:, 0]])
    assert gradient_symmetricity(model, n_triplets=50, seed=3) == pytest.approx(expected, abs=1e-9)


def test_gradient_symmetricity_of_one_hot_inputs_with_a_shared_first_layer_is_one():
    model = ModularMLP(ModularMLPConfig(modulus=P, n_layers=3, hidden=16, activation="relu"))
    with torch.no_grad():
        w = model.hidden[0].linear.weight
        w[:, P:] = w[:, :P]  # a and b read by the same weights: the network is symmetric in a, b
    assert gradient_symmetricity(model) == pytest.approx(1.0, abs=1e-9)


def test_gradient_symmetricity_leaves_no_gradients_behind():
    model = _EmbedThen("sum")
    gradient_symmetricity(model)
    assert all(param.grad is None for param in model.parameters())


def test_gradient_symmetricity_needs_an_embedding_layer():
    model = nn.Sequential(nn.Linear(2, P))
    with pytest.raises(UnsupportedModelError, match="no nn.Embedding"):
        gradient_symmetricity(model, modulus=P)


def test_clock_or_pizza_calls_gromovs_network_a_clock():
    result = clock_or_pizza(gromov_modular_mlp(31, [3, 7, 12], width=768))
    assert result.algorithm == "clock"
    assert result.distance_irrelevance > 0.9  # measured 0.974
    assert abs(result.gradient_symmetricity) < 0.2  # measured -0.056: independent phases for a and b
    assert ClockPizza(0.99, 0.1).algorithm == "pizza"

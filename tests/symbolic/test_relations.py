from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.models import TinyReLU, TinyReLUConfig
from mechscope.symbolic.relations import article_relations, one_unit_weights
from mechscope.serialize import to_json


def _one_unit(w1: list[float], b1: float, w2: float, b2: float) -> TinyReLU:
    model = TinyReLU(TinyReLUConfig(n_inputs=len(w1)))
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([w1]))
        model.fc1.bias.fill_(b1)
        model.fc2.weight.fill_(w2)
        model.fc2.bias.fill_(b2)
    return model


def test_article_relations_sum_form_hold_for_the_articles_weights():
    # The article's learned weights for the sum (layer 1: 0.3583921..., 2.8018; layer 2: 2.7902, -7.8177).
    model = _one_unit([0.3583921] * 5, 2.801814556121826, 2.790241241455078, -7.817744731903076)
    relations = article_relations(model, torch.zeros(2, 5), coefficients=[1.0] * 5, constant=0.0, tolerance=1e-3)
    assert list(relations) == ["w2*W1_1", "w2*W1_2", "w2*W1_3", "w2*W1_4", "w2*W1_5", "b2"]
    assert all(r.holds for r in relations.values())
    assert relations["b2"].statement == "b2 = -w2 * b1"
    assert relations["w2*W1_1"].value == pytest.approx(2.790241241455078 * 0.3583921, rel=1e-6)


def test_article_relations_weighted_form_checks_each_coefficient_and_constant():
    m, c = [1.45, 0.05, -0.84], -0.85
    w2, b1 = 2.0, 3.0
    model = _one_unit([v / w2 for v in m], b1, w2, c - w2 * b1)
    relations = article_relations(model, torch.zeros(1, 3), coefficients=m, constant=c, tolerance=1e-3)
    assert relations["w2*b1+b2"].statement == "w2 * b1 + b2 = c"
    assert relations["w2*b1+b2"].expected == c
    assert all(r.holds for r in relations.values())


def test_article_relations_report_failures_beyond_tolerance():
    model = _one_unit([0.5, 0.5], 1.0, 2.0, -2.0)
    relations = article_relations(model, torch.zeros(1, 2), coefficients=[1.0, 1.05], constant=0.0, tolerance=0.01)
    assert relations["w2*W1_1"].holds and not relations["w2*W1_2"].holds
    assert to_json(relations["w2*W1_2"]) == {
        "value": 1.0, "expected": 1.05, "holds": False, "tolerance": 0.01, "statement": "w2 * W1_2 = m_2"
    }


def test_one_unit_weights_reads_plain_sequential():
    model = nn.Sequential(nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 1))
    weights = one_unit_weights(model, torch.zeros(1, 3))
    assert torch.equal(weights.w1, model[0].weight[0].detach().double())


def test_article_relations_wider_network_raises():
    model = TinyReLU(TinyReLUConfig(n_inputs=3, hidden=2))
    with pytest.raises(UnsupportedModelError, match=r"need Linear\(n, 1\) -> ReLU -> Linear\(1, 1\).*fc1\(3->2\)"):
        article_relations(model, torch.zeros(1, 3), coefficients=[1.0] * 3, constant=0.0)


def test_article_relations_wrong_number_of_coefficients_raises():
    with pytest.raises(ConfigError, match="got 2 coefficients for a network with 3 inputs"):
        article_relations(_one_unit([1.0] * 3, 1.0, 1.0, 0.0), torch.zeros(1, 3), coefficients=[1, 1], constant=0.0)

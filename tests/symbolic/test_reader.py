from __future__ import annotations

import json

import pytest
import torch

from mechscope.data import function_data
from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.models import TinyReLU, TinyReLUConfig
from mechscope.symbolic.reader import read_formula
from mechscope.symbolic.transforms import Transforms
from mechscope.serialize import to_json

CASES = ("sum", "weighted", "product")


@pytest.mark.parametrize("function", CASES)
def test_read_formula_article_cases_recover_coefficients_within_0_02(article_models, function):
    model, data = article_models[function]
    report = read_formula(model, data)
    top = report.region_map.dominant
    true = torch.tensor(data.extras["coefficients"], dtype=torch.float64)
    assert (top.coefficients[0] - true).abs().max() < 0.02
    assert abs(float(top.intercept[0]) - data.extras["constant"]) < 0.02
    assert report.affine_on_data
    assert report.metrics["max_coefficient_error"] < 0.02 and report.metrics["constant_error"] < 0.02


@pytest.mark.parametrize("function", CASES)
def test_read_formula_article_cases_fit_held_out_data_in_article_range(article_models, function):
    model, data = article_models[function]
    metrics = read_formula(model, data).metrics
    assert metrics["mse"] < 1e-4  # the article: 1.1e-4 (sum), 1.0e-4 (weighted)
    if function == "product":
        assert metrics["mse_original"] < 1e-6  # the article: 7.5e-9, evaluated on x1 * ... * x5


@pytest.mark.parametrize("function", CASES)
def test_read_formula_article_relations_hold_at_stated_tolerance(article_models, function):
    model, data = article_models[function]
    relations = read_formula(model, data, relation_tolerance=1e-3).relations
    assert len(relations) == 6
    assert all(r.holds and r.tolerance == 1e-3 for r in relations.values())
    assert ("b2" in relations) == (function != "weighted")


@pytest.mark.parametrize("function", CASES)
def test_read_formula_every_formula_matches_the_network_within_1e_5(article_models, function):
    model, data = article_models[function]
    report = read_formula(model, data)
    assert report.region_map.max_abs_error < 1e-5
    assert all(f.region.max_abs_error < 1e-5 for f in report.formulas)


def test_read_formula_sum_prints_article_and_clean_forms(article_models):
    report = read_formula(*article_models["sum"])
    assert report.formula == "f(X) = 1.0*x1 + 1.0*x2 + 1.0*x3 + 1.0*x4 + 1.0*x5 + 0.0" or report.formula == (
        "f(X) = 1.0*x1 + 1.0*x2 + 1.0*x3 + 1.0*x4 + 1.0*x5 + -0.0"
    )
    assert report.formulas[0].simplified.text == "f(X) = x1 + x2 + x3 + x4 + x5"
    assert report.formulas[0].simplified.max_abs_error < 1e-3


def test_read_formula_weighted_simplified_error_is_reported_honestly(article_models):
    model, data = article_models["weighted"]
    coarse = read_formula(model, data, tolerance=0.05).formulas[0].simplified
    fine = read_formula(model, data, tolerance=1e-4).formulas[0].simplified
    assert fine.max_abs_error < coarse.max_abs_error
    assert fine.max_abs_error < 1e-2


def test_read_formula_product_uses_declared_transforms_from_data(article_models):
    report = read_formula(*article_models["product"])
    assert report.transforms == Transforms("log", "exp")
    assert report.formula == "f(X) = 1.0 * x1^1.0 * x2^1.0 * x3^1.0 * x4^1.0 * x5^1.0"
    assert report.formulas[0].network_formula.startswith("f(X) = 1.0*x1 + 1.0*x2")
    assert report.formulas[0].simplified.text == "f(X) = x1*x2*x3*x4*x5"
    assert report.formulas[0].simplified.space == "original"


def test_read_formula_reports_where_the_relu_is_active():
    model = TinyReLU(TinyReLUConfig(n_inputs=2))
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[0.5, 0.5]]))
        model.fc1.bias.fill_(1.0)  # inactive when x1 + x2 < -2: about 8% of standard-normal points
        model.fc2.weight.fill_(2.0)
        model.fc2.bias.fill_(-2.0)
    data = function_data("sum", n_inputs=2, n_train=10, n_test=5000)
    report = read_formula(model, data)
    active = float(((data.x_test.sum(dim=1) + 2) > 0).double().mean())
    assert report.region_map.unit_active_fraction[0].item() == pytest.approx(active)
    assert not report.affine_on_data and report.formula is None
    assert f"active on {active:.4%} of the data" in report.holds_on()
    assert "holds only where the unit is active" in report.holds_on()
    assert report.formulas[0].region.coverage == pytest.approx(active)


def test_read_formula_json_has_required_keys(article_models):
    report = read_formula(*article_models["weighted"])
    result = json.loads(json.dumps(to_json(report)))
    assert {"regions", "affine_on_data", "relations"} <= set(result)
    assert {"coverage", "coefficients", "intercept", "formula", "max_abs_error"} <= set(result["regions"][0])
    assert set(result["relations"]["w2*b1+b2"]) >= {"value", "expected", "holds"}


def test_read_formula_tensor_input_has_no_target_or_relations(article_models):
    model, data = article_models["sum"]
    report = read_formula(model, data.x_test[:100])
    assert report.target is None and report.relations == {} and report.metrics == {}


def test_read_formula_wider_network_notes_skipped_relations():
    data = function_data("sum", n_inputs=3, n_train=10, n_test=200)
    report = read_formula(TinyReLU(TinyReLUConfig(n_inputs=3, hidden=3)), data)
    assert report.relations == {}
    assert report.notes and report.notes[0].startswith("Relations skipped")


def test_read_formula_unknown_split_raises(article_models):
    with pytest.raises(ConfigError, match="split must be 'test', 'train' or 'all'"):
        read_formula(*article_models["sum"], split="valid")  # type: ignore[arg-type]


def test_read_formula_tanh_model_raises():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh())
    with pytest.raises(UnsupportedModelError, match="linearize"):
        read_formula(model, torch.randn(4, 2))

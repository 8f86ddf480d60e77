from __future__ import annotations

import pytest
import sympy
import torch

from mechscope.errors import ConfigError, DataError
from mechscope.symbolic.formula import article_formula, simplify_formula, simplify_number, variable_names
from mechscope.symbolic.transforms import Transforms


def test_article_formula_sum_matches_article_text():
    text = article_formula(torch.tensor([[0.9999, 1.0001, 0.99995, 1.0, 0.9998]]), torch.tensor([-0.001]))
    assert text == "f(X) = 1.0*x1 + 1.0*x2 + 1.0*x3 + 1.0*x4 + 1.0*x5 + -0.0"


def test_article_formula_weighted_matches_article_text():
    text = article_formula(torch.tensor([1.4502, 0.0499, -0.8413, -0.3788, 0.1903]), torch.tensor(-0.8497))
    assert text == "f(X) = 1.45*x1 + 0.05*x2 + -0.84*x3 + -0.38*x4 + 0.19*x5 + -0.85"


def test_article_formula_product_is_written_in_original_space():
    text = article_formula(torch.ones(1, 3), torch.zeros(1), transforms=Transforms("log", "exp"))
    assert text == "f(X) = 1.0 * x1^1.0 * x2^1.0 * x3^1.0"


def test_article_formula_several_outputs_one_line_each():
    text = article_formula(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0.5, -1.0]))
    assert text.splitlines() == ["f1(X) = 1.0*x1 + 0.0*x2 + 0.5", "f2(X) = 0.0*x1 + 2.0*x2 + -1.0"]


@pytest.mark.parametrize(
    ("value", "tolerance", "expected"),
    [
        (0.99976, 0.01, sympy.Integer(1)),
        (-0.0003, 0.01, sympy.Integer(0)),
        (0.5002, 0.01, sympy.Rational(1, 2)),
        (1.4508, 0.01, sympy.Float("1.45", 3)),
        (-0.8421, 0.001, sympy.Float("-0.842", 3)),
    ],
)
def test_simplify_number_picks_simplest_within_tolerance(value, tolerance, expected):
    result = simplify_number(value, tolerance)
    assert result == expected
    assert abs(float(result) - value) <= tolerance


def test_simplify_number_negative_tolerance_raises():
    with pytest.raises(ConfigError, match="tolerance must be a finite number >= 0"):
        simplify_number(1.0, -0.1)


def test_simplify_formula_sum_is_clean_and_error_is_measured():
    a = torch.tensor([[0.9996, 1.0003, 1.0]], dtype=torch.float64)
    b = torch.tensor([0.0004], dtype=torch.float64)
    x = torch.randn(200, 3, dtype=torch.float64)
    network = x @ a.T + b
    result = simplify_formula(a, b, x, network, tolerance=0.01)
    assert result.text == "f(X) = x1 + x2 + x3"
    truth = (x.sum(dim=1, keepdim=True) - network).abs().max().item()
    assert result.max_abs_error == pytest.approx(truth, rel=1e-9)
    assert result.space == "network" and result.n_points == 200


def test_simplify_formula_zero_tolerance_keeps_the_exact_fit():
    a = torch.tensor([[0.123456789, -2.5]], dtype=torch.float64)
    b = torch.tensor([0.75], dtype=torch.float64)
    x = torch.randn(50, 2, dtype=torch.float64)
    result = simplify_formula(a, b, x, x @ a.T + b, tolerance=0.0)
    assert result.max_abs_error < 1e-12


def test_simplify_formula_mixed_values_use_decimals_not_fractions():
    a = torch.tensor([[0.5002, -1.1796, -0.7417]], dtype=torch.float64)
    x = torch.randn(10, 3, dtype=torch.float64)
    result = simplify_formula(a, torch.zeros(1, dtype=torch.float64), x, x @ a.T, tolerance=0.01)
    assert result.expressions == ("0.5*x1 - 1.18*x2 - 0.74*x3",)


def test_simplify_formula_product_is_a_monomial_in_original_space():
    a = torch.full((1, 3), 1.0002, dtype=torch.float64)
    b = torch.tensor([0.0001], dtype=torch.float64)
    x_log = torch.randn(100, 3, dtype=torch.float64)
    result = simplify_formula(a, b, x_log, x_log @ a.T + b, transforms=Transforms("log", "exp"))
    assert result.expressions == ("x1*x2*x3",)
    assert result.space == "original"
    truth = (x_log.exp().prod(dim=1) - (x_log @ a.T + b).exp()[:, 0]).abs().max().item()
    assert result.max_abs_error == pytest.approx(truth, rel=1e-6)


def test_simplify_formula_shape_mismatch_raises():
    with pytest.raises(DataError, match="need points"):
        simplify_formula(torch.ones(1, 3), torch.zeros(1), torch.zeros(4, 2), torch.zeros(4, 1))


def test_variable_names_follow_the_article():
    assert variable_names(3) == ["x1", "x2", "x3"]

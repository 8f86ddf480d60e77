"""function_data: the sum, weighted and product relations, input distributions, determinism and errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from mechscope.data import function_data
from mechscope.data.functions import Coefficients, FunctionName
from mechscope.errors import ConfigError

SMALL: dict[str, Any] = {"n_train": 2_000, "n_test": 500}


def _relation_holds(x: torch.Tensor, y: torch.Tensor, coefficients: list[float], constant: float) -> bool:
    expected = x.double() @ torch.tensor(coefficients, dtype=torch.float64) + constant
    return torch.allclose(y.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("function", ["sum", "weighted", "product"])
def test_function_data_targets_follow_coefficients_and_constant(function: FunctionName) -> None:
    data = function_data(function, n_inputs=4, **SMALL)
    coefficients, constant = data.extras["coefficients"], data.extras["constant"]
    assert len(coefficients) == 4
    assert _relation_holds(data.x_train, data.y_train, coefficients, constant)
    assert _relation_holds(data.x_test, data.y_test, coefficients, constant)


@pytest.mark.parametrize("function", ["sum", "weighted", "product"])
def test_function_data_shapes_and_dtypes(function: FunctionName) -> None:
    data = function_data(function, n_inputs=3, n_train=70, n_test=30)
    assert data.x_train.shape == (70, 3) and data.x_test.shape == (30, 3)
    assert data.y_train.shape == (70,) and data.y_test.shape == (30,)
    assert {t.dtype for t in (data.x_train, data.y_train, data.x_test, data.y_test)} == {torch.float32}
    assert data.task == "regression" and data.n_classes is None


def test_function_data_sum_uses_unit_coefficients() -> None:
    data = function_data("sum", **SMALL)
    assert data.extras["coefficients"] == [1.0] * 5 and data.extras["constant"] == 0.0
    assert data.extras["transforms"] == {}
    assert torch.allclose(data.y_test, data.x_test.sum(1), atol=1e-5)


def test_function_data_article_defaults_draw_standard_normal_inputs() -> None:
    data = function_data("sum")
    assert data.x_train.shape == (100_000, 5) and data.x_test.shape == (10_000, 5)
    # 500,000 draws: the standard error of the mean is 0.0014 and of the std about 0.001
    assert abs(float(data.x_train.mean())) < 0.01
    assert abs(float(data.x_train.std()) - 1.0) < 0.01


def test_function_data_weighted_uses_given_coefficients_and_same_inputs() -> None:
    drawn = function_data("weighted", seed=5, **SMALL)
    given = function_data("weighted", coefficients=[2.0, -1.0, 0.0, 0.5, 3.0], constant=-4.0, seed=5, **SMALL)
    assert given.extras["coefficients"] == [2.0, -1.0, 0.0, 0.5, 3.0] and given.extras["constant"] == -4.0
    assert torch.equal(given.x_train, drawn.x_train)  # x does not depend on whether coefficients were given
    assert _relation_holds(given.x_test, given.y_test, [2.0, -1.0, 0.0, 0.5, 3.0], -4.0)


@pytest.mark.parametrize(
    "coefficients", [np.array([1.0, 2.0]), torch.tensor([1.0, 2.0]), (1, 2)], ids=["ndarray", "tensor", "tuple"]
)
def test_function_data_weighted_accepts_array_like_coefficients(coefficients: Coefficients) -> None:
    data = function_data("weighted", n_inputs=2, coefficients=coefficients, constant=0.5, n_train=10, n_test=10)
    assert data.spec["coefficients"] == [1.0, 2.0] and data.spec["constant"] == 0.5


def test_function_data_weighted_coefficients_depend_on_seed() -> None:
    first = function_data("weighted", seed=0, n_train=10, n_test=10)
    second = function_data("weighted", seed=1, n_train=10, n_test=10)
    assert first.extras["coefficients"] != second.extras["coefficients"]
    assert first.extras["constant"] != second.extras["constant"]


def test_function_data_product_log_space_matches_raw_product() -> None:
    data = function_data("product", **SMALL)
    raw, raw_y = data.extras["x_test_raw"], data.extras["y_test_raw"]
    assert data.extras["transforms"] == {"input": "log", "output": "exp"}
    assert raw.shape == data.x_test.shape and bool((raw > 0).all())
    assert torch.allclose(data.x_test, raw.log(), rtol=1e-5, atol=1e-5)
    assert torch.allclose(raw_y.double(), raw.double().prod(1), rtol=1e-5)
    assert torch.allclose(data.y_test.double().exp(), raw.double().prod(1), rtol=1e-4)


def test_function_data_product_raw_inputs_are_gamma_one_one() -> None:
    raw = function_data("product", n_train=10, n_test=20_000).extras["x_test_raw"].double()
    # Gamma(1, 1) has mean 1 and variance 1; 100,000 draws give a standard error of 0.003 on the mean
    assert abs(float(raw.mean()) - 1.0) < 0.02
    assert abs(float(raw.var()) - 1.0) < 0.05


@pytest.mark.parametrize("function", ["sum", "weighted", "product"])
def test_function_data_same_seed_same_data_different_seed_different(function: FunctionName) -> None:
    first = function_data(function, seed=7, **SMALL)
    assert function_data(function, seed=7, **SMALL) == first
    other = function_data(function, seed=8, **SMALL)
    assert not torch.equal(other.x_train, first.x_train)


def test_function_data_leaves_global_rngs_untouched() -> None:
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state(legacy=False)
    function_data("product", **SMALL)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state(legacy=False)["state"]["key"], numpy_state["state"]["key"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"function": "prod"}, r"Unknown function 'prod'; choose one of 'sum', 'weighted', 'product'"),
        ({"n_inputs": 0}, r"n_inputs must be an integer >= 1, got 0"),
        ({"n_train": 2.0}, r"n_train must be an integer >= 1, got 2\.0"),
        (
            {"function": "weighted", "coefficients": [1.0, 2.0]},
            r"coefficients must be 5 finite numbers .* got \[1\.0, 2\.0\]",
        ),
        ({"function": "weighted", "coefficients": [1, 2, 3, 4, math.nan]}, r"coefficients must be 5 finite numbers"),
        ({"function": "weighted", "coefficients": ["a", "b"]}, r"coefficients must be numbers, got \['a', 'b'\]"),
        ({"function": "weighted", "constant": math.inf}, r"constant must be a finite number, got inf"),
        (
            {"function": "sum", "coefficients": [2.0] * 5},
            r"function='sum' fixes every coefficient to 1 .* use function='weighted'",
        ),
        ({"function": "product", "constant": 1.0}, r"function='product' fixes every coefficient to 1 and the constant"),
    ],
)
def test_function_data_invalid_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        function_data(**{"n_train": 10, "n_test": 10, **kwargs})

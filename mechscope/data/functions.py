"""Regression data for toy functions: sum, weighted sum plus constant, and product (in log space)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor

from mechscope.data._validate import check_choice, check_int, check_seed
from mechscope.data.bundle import DataBundle
from mechscope.errors import ConfigError
from mechscope.limits import check_memory

__all__ = ["function_data", "FunctionName", "Coefficients", "FUNCTIONS"]

FunctionName = Literal["sum", "weighted", "product"]

Coefficients = Union[Sequence[float], np.ndarray, Tensor]
"""One coefficient per input, as a list, array or 1-D tensor."""

FUNCTIONS: tuple[str, ...] = ("sum", "weighted", "product")
"""Functions `function_data` knows."""


def function_data(
    function: FunctionName = "sum",
    *,
    n_inputs: int = 5,
    n_train: int = 100_000,
    n_test: int = 10_000,
    coefficients: Coefficients | None = None,
    constant: float | None = None,
    seed: int = 0,
) -> DataBundle:
    """Build a regression task y = f(x) from the toy-function experiments.

    - "sum": x ~ N(0, 1), y = x1 + ... + xn.
    - "weighted": x ~ N(0, 1), y = x @ coefficients + constant; coefficients and
      constant not given are drawn from N(0, 1) with `seed` (after x, so x does
      not depend on whether they were given).
    - "product": raw ~ Gamma(1, 1), x = log(raw), y = log(prod raw) = sum(x); a
      prediction maps back to the product through exp (see extras "transforms").

    Values are generated in float64 and stored as float32.

    Args:
        function: "sum", "weighted" or "product".
        n_inputs: Number of input features.
        n_train: Number of training examples.
        n_test: Number of held-out examples.
        coefficients: One weight per input for "weighted"; "sum" and "product" fix
            them to 1 (passing all ones is accepted, so a spec reloads).
        constant: Additive constant for "weighted"; fixed to 0 otherwise.
        seed: Seed of the private numpy generator; the global RNG is left untouched.

    Returns:
        A regression DataBundle: x (batch, n_features) float32, y (batch,) float32.
        extras: "coefficients" (list), "constant" (float), "transforms"
        ({"input": "log", "output": "exp"} for "product", else {}), plus
        "x_test_raw" and "y_test_raw" (the untransformed test data) for "product".

    Raises:
        ConfigError: unknown function, counts < 1, coefficients of the wrong length
            or not finite, or custom coefficients/constant for "sum" or "product".

    Example:
        >>> data = function_data("weighted", n_train=100, n_test=10)
        >>> w = torch.tensor(data.extras["coefficients"])
        >>> torch.allclose(data.y_test, data.x_test @ w + data.extras["constant"], atol=1e-5)
        True
    """
    name = check_choice("function", function, FUNCTIONS)
    n_inputs = check_int("n_inputs", n_inputs, minimum=1)
    n_train = check_int("n_train", n_train, minimum=1)
    n_test = check_int("n_test", n_test, minimum=1)
    # float64 draws, float32 copies and the gamma path's intermediates: about 4 x 8 bytes per value
    check_memory(32 * (n_train + n_test) * n_inputs, f"function data ({n_train + n_test} examples x {n_inputs} inputs)")
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, x_test, raw_test = _draw_inputs(rng, name, (n_train, n_inputs), (n_test, n_inputs))
    # Always drawn, so x above and the constant below do not depend on what the caller passed.
    drawn_coefficients = rng.standard_normal(n_inputs)
    drawn_constant = float(rng.standard_normal())
    weights, bias = _resolve_weights(name, n_inputs, coefficients, constant, drawn_coefficients, drawn_constant)
    spec = {
        "kind": "function", "function": name, "n_inputs": n_inputs, "n_train": n_train, "n_test": n_test,
        "coefficients": weights.tolist(), "constant": bias, "seed": seed,
    }
    return DataBundle(
        x_train=_tensor(x_train),
        y_train=_tensor(x_train @ weights + bias),  # (batch,)
        x_test=_tensor(x_test),
        y_test=_tensor(x_test @ weights + bias),  # (batch,)
        spec=spec,
        task="regression",
        extras=_extras(weights, bias, raw_test),
    )


def _draw_inputs(
    rng: np.random.Generator, name: str, train_shape: tuple[int, int], test_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Train and test inputs (float64): log Gamma(1, 1) for "product" (with its raw test values), else N(0, 1)."""
    if name == "product":
        raw_train = _gamma(rng, train_shape)
        raw_test = _gamma(rng, test_shape)
        return np.log(raw_train), np.log(raw_test), raw_test
    return rng.standard_normal(train_shape), rng.standard_normal(test_shape), None


def _extras(weights: np.ndarray, bias: float, raw_test: np.ndarray | None) -> dict[str, Any]:
    """Coefficients, constant and transforms; with raw test values ("product"), those too, untransformed."""
    extras: dict[str, Any] = {"coefficients": weights.tolist(), "constant": bias, "transforms": {}}
    if raw_test is not None:
        extras["transforms"] = {"input": "log", "output": "exp"}
        extras["x_test_raw"] = _tensor(raw_test)
        extras["y_test_raw"] = _tensor(raw_test.prod(axis=1))
    return extras


def _resolve_weights(
    name: str,
    n_inputs: int,
    coefficients: Coefficients | None,
    constant: float | None,
    drawn_coefficients: np.ndarray,
    drawn_constant: float,
) -> tuple[np.ndarray, float]:
    """Pick the (coefficients, constant) in use: fixed for sum/product, given or drawn for weighted."""
    given = None if coefficients is None else _as_coefficients(coefficients, n_inputs)
    if constant is not None and (
        isinstance(constant, bool) or not isinstance(constant, numbers.Real) or not math.isfinite(float(constant))
    ):
        raise ConfigError(f"constant must be a finite number, got {constant!r}.")
    if name == "weighted":
        weights = drawn_coefficients if given is None else given
        return weights, drawn_constant if constant is None else float(constant)
    ones = np.ones(n_inputs)
    if (given is not None and not np.array_equal(given, ones)) or (constant is not None and float(constant) != 0.0):
        raise ConfigError(
            f"function={name!r} fixes every coefficient to 1 and the constant to 0, got "
            f"coefficients={coefficients!r}, constant={constant!r}; use function='weighted' for custom ones."
        )
    return ones, 0.0


def _as_coefficients(coefficients: Coefficients, n_inputs: int) -> np.ndarray:
    """Coefficients as a float64 vector of length n_inputs, or ConfigError."""
    values = coefficients.detach().cpu().numpy() if isinstance(coefficients, Tensor) else coefficients
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"coefficients must be numbers, got {coefficients!r}.") from exc
    if array.shape != (n_inputs,) or not np.isfinite(array).all():
        raise ConfigError(
            f"coefficients must be {n_inputs} finite numbers (one per input, n_inputs={n_inputs}), "
            f"got {coefficients!r}; pass a list of length n_inputs or change n_inputs."
        )
    return array


def _gamma(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Gamma(1, 1) samples kept above 0 so their log stays finite."""
    return np.maximum(rng.gamma(1.0, 1.0, size=shape), np.finfo(np.float64).tiny)


def _tensor(array: np.ndarray) -> Tensor:
    """float64 array -> float32 tensor (a copy)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

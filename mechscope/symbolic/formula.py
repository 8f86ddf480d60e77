"""Formula text: the article's rounded style, and readable sympy forms verified against the network.

`article_formula` prints a region's map as seed 002 does (`f(X) = 1.0*x1 + ... + -0.0`).
`simplify_formula` replaces each displayed parameter by the simplest number within a
tolerance (an integer, a fraction with a small denominator, or the shortest decimal),
builds the sympy expression, evaluates that very expression on the covered points and
reports its largest deviation from the network, so a simplification can never hide a
worse fit.

Example:
    >>> article_formula(torch.tensor([[0.9998, 1.0001]]), torch.tensor([-0.002]))
    'f(X) = 1.0*x1 + 1.0*x2 + -0.0'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np
import sympy
import torch
from torch import Tensor

from mechscope.errors import ConfigError, DataError
from mechscope.symbolic.transforms import Transforms

__all__ = [
    "SimplifiedFormula",
    "article_formula",
    "simplify_formula",
    "simplify_number",
    "variable_names",
]


@dataclass(frozen=True)
class SimplifiedFormula:
    """A readable formula and how far it is from the network on the points it covers.

    Attributes:
        expressions: One sympy expression (as text) per output, e.g. "x1 + x2 + x3".
        text: The formula as printed, e.g. "f(X) = x1 + x2 + x3".
        tolerance: Largest change allowed to any displayed parameter.
        max_abs_error: Largest |formula - network| over the covered points, in `space`.
        space: "original" when declared transforms were undone, else "network".
        n_points: Points the error was measured on.
    """

    json_skip: ClassVar[frozenset[str]] = frozenset({"text"})
    json_extra: ClassVar[tuple[str, ...]] = ("formula",)

    expressions: tuple[str, ...]
    text: str
    tolerance: float
    max_abs_error: float
    space: str
    n_points: int

    @property
    def formula(self) -> str:
        """The formula as printed (`text`): the name it goes by in JSON, beside a region's `formula`."""
        return self.text


def variable_names(n_features: int) -> list[str]:
    """["x1", ..., "xn"], the article's names for the inputs."""
    return [f"x{i + 1}" for i in range(n_features)]


def article_formula(
    coefficients: Tensor,
    intercept: Tensor,
    *,
    transforms: Transforms | None = None,
    digits: int = 2,
) -> str:
    """Print an affine map in the article's style, one line per output.

    Args:
        coefficients: A, shape (n_outputs, n_features) or (n_features,).
        intercept: b, shape (n_outputs,) or ().
        transforms: Declared transforms; the formula is then written in the original space.
        digits: Decimals kept by `round`.

    Returns:
        "f(X) = 1.0*x1 + ... + -0.0" (or "f1(X) = ...\\nf2(X) = ..." for several outputs).
    """
    transforms = transforms or Transforms()
    a, b = _as_map(coefficients, intercept)
    names = variable_names(a.shape[1])
    lines = []
    for k in range(a.shape[0]):
        params, constant = transforms.display_parameters(a[k].tolist(), float(b[k]))
        lines.append(f"{_lhs(k, a.shape[0])} = {transforms.article_text(params, constant, names, digits)}")
    return "\n".join(lines)


def simplify_number(value: float, tolerance: float, *, max_denominator: int = 4) -> sympy.Expr:
    """The simplest number within `tolerance` of `value`.

    Tries an integer, then a fraction with denominator up to `max_denominator`, then the
    decimal with the fewest digits (sympy's `nsimplify` prefers long rationals such as
    103/71 for 1.4508, which read worse than 1.45).

    Raises:
        ConfigError: tolerance is negative or not finite, or value is not finite.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"tolerance must be a finite number >= 0, got {tolerance!r}; e.g. 0.01.")
    if not math.isfinite(value):
        raise ConfigError(f"cannot simplify the non-finite number {value!r}.")
    for denominator in range(1, max_denominator + 1):
        candidate = Fraction(round(value * denominator), denominator)
        if abs(float(candidate) - value) <= tolerance:
            return sympy.Rational(candidate.numerator, candidate.denominator)
    for decimals in range(1, 16):
        rounded = round(value, decimals)
        if abs(rounded - value) <= tolerance or decimals == 15:
            text = f"{rounded:.{decimals}f}".rstrip("0")
            significant = len(text.lstrip("-").replace(".", "").lstrip("0")) or 1
            return sympy.Float(text, max(significant, 1))
    return sympy.Float(value)  # not reached: 15 decimals always stop the loop


def simplify_formula(
    coefficients: Tensor,
    intercept: Tensor,
    x: Tensor,
    network_output: Tensor,
    *,
    transforms: Transforms | None = None,
    tolerance: float = 0.01,
    max_denominator: int = 2,
) -> SimplifiedFormula:
    """Simplify an affine map's displayed parameters and measure the result against the network.

    Args:
        coefficients: A, shape (n_outputs, n_features).
        intercept: b, shape (n_outputs,).
        x: The covered points in the network's input space, shape (batch, n_features).
        network_output: The network's outputs there, shape (batch, n_outputs), network space.
        transforms: Declared transforms; the formula and its error are then in the original space.
        tolerance: Largest change allowed to any displayed parameter (coefficient,
            constant, or for log/exp the constant factor).
        max_denominator: Largest denominator of a fraction; fractions are used only when
            every parameter of an output is an integer or such a fraction, else decimals.

    Returns:
        SimplifiedFormula whose `max_abs_error` comes from evaluating the displayed
        expression itself on `x`.

    Raises:
        DataError: x and network_output disagree in length or width.
        ConfigError: tolerance is negative.
    """
    transforms = transforms or Transforms()
    a, b = _as_map(coefficients, intercept)
    if x.dim() != 2 or x.shape[1] != a.shape[1] or network_output.shape != (x.shape[0], a.shape[0]):
        raise DataError(
            f"need points (batch, {a.shape[1]}) and network outputs (batch, {a.shape[0]}), got "
            f"{tuple(x.shape)} and {tuple(network_output.shape)}."
        )
    names = variable_names(a.shape[1])
    symbols = sympy.symbols(names, positive=transforms.input == "log", real=True)
    expressions = []
    for k in range(a.shape[0]):
        params, constant = transforms.display_parameters(a[k].tolist(), float(b[k]))
        # Fractions only when every parameter is one; a mix of 3*x5/4 and 1.18*x2 reads worse than decimals.
        fractions = all(_near_fraction(v, tolerance, max_denominator) for v in [*params, constant])
        denominator = max_denominator if fractions else 1
        simple = [simplify_number(p, tolerance, max_denominator=denominator) for p in params]
        constant_expr = simplify_number(constant, tolerance, max_denominator=denominator)
        expressions.append(transforms.expression(simple, constant_expr, symbols))
    x_original = transforms.original_inputs(x.to("cpu", torch.float64))  # sympy evaluates on numpy arrays
    reference = transforms.original_outputs(network_output.to("cpu", torch.float64))
    error = 0.0
    if x.shape[0]:
        predicted = np.stack([_evaluate(expr, symbols, x_original) for expr in expressions], axis=1)
        error = float(np.max(np.abs(predicted - reference.numpy())))
    text = "\n".join(f"{_lhs(k, len(expressions))} = {sympy.sstr(e)}" for k, e in enumerate(expressions))
    return SimplifiedFormula(
        expressions=tuple(sympy.sstr(e) for e in expressions),
        text=text,
        tolerance=float(tolerance),
        max_abs_error=error,
        space="network" if transforms.is_identity else "original",
        n_points=int(x.shape[0]),
    )


def _near_fraction(value: float, tolerance: float, max_denominator: int) -> bool:
    """True when some p/q with q <= max_denominator lies within tolerance of value."""
    return any(abs(round(value * q) / q - value) <= tolerance for q in range(1, max_denominator + 1))


def _evaluate(expr: sympy.Expr, symbols: Sequence[sympy.Symbol], x: Tensor) -> np.ndarray:
    """Evaluate `expr` at every row of x (batch, n_features) with numpy."""
    used = [i for i, s in enumerate(symbols) if s in expr.free_symbols]
    fn = sympy.lambdify([symbols[i] for i in used], expr, modules="numpy")
    columns = x.numpy()
    value = fn(*[columns[:, i] for i in used])
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (x.shape[0],))


def _as_map(coefficients: Tensor, intercept: Tensor) -> tuple[Tensor, Tensor]:
    """(n_features,) / () inputs become (1, n_features) / (1,); float64."""
    a = torch.as_tensor(coefficients, dtype=torch.float64, device="cpu")
    b = torch.as_tensor(intercept, dtype=torch.float64, device="cpu")
    a = a.reshape(1, -1) if a.dim() == 1 else a
    b = b.reshape(-1)
    if a.dim() != 2 or b.shape[0] != a.shape[0]:
        raise DataError(
            f"coefficients must be (n_outputs, n_features) with one intercept per output, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}."
        )
    return a, b


def _lhs(k: int, n_outputs: int) -> str:
    return "f(X)" if n_outputs == 1 else f"f{k + 1}(X)"

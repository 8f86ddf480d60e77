"""Declared input/output transforms: read a formula learned in log space back in the original space.

A network trained on `log(x)` to predict `log(y)` (seed 002's product) computes an affine
map in log space; with `Transforms(input="log", output="exp")` its formula reads
`f(X) = e^c * x1^a1 * ... * xn^an` in the original space.

Example:
    >>> t = Transforms.from_extras({"transforms": {"input": "log", "output": "exp"}})
    >>> t.original_inputs(torch.zeros(1, 2))
    tensor([[1., 1.]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy
import torch
from torch import Tensor

from mechscope.errors import ConfigError

__all__ = ["Transforms", "TRANSFORM_NAMES"]

TRANSFORM_NAMES: tuple[str, ...] = ("identity", "log", "exp")
"""Transforms an input or output may declare."""

_TORCH: dict[str, Callable[[Tensor], Tensor]] = {"identity": lambda t: t, "log": torch.log, "exp": torch.exp}
_INVERSE = {"identity": "identity", "log": "exp", "exp": "log"}
_SYMPY: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {"identity": lambda e: e, "log": sympy.log, "exp": sympy.exp}


@dataclass(frozen=True)
class Transforms:
    """How the network's space relates to the original one.

    Attributes:
        input: Applied to original inputs to get the network's inputs: x_net = input(x).
        output: Applied to the network's outputs to get original outputs: y = output(y_net).
    """

    input: str = "identity"  # "identity", "log" or "exp"
    output: str = "identity"  # "identity", "log" or "exp"

    def __post_init__(self) -> None:
        for side in ("input", "output"):
            value = getattr(self, side)
            if value not in TRANSFORM_NAMES:
                raise ConfigError(
                    f"{side} transform must be one of {', '.join(TRANSFORM_NAMES)}, got {value!r}; "
                    'e.g. Transforms(input="log", output="exp") for a product learned in log space.'
                )

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any] | None) -> Transforms:
        """Read `extras["transforms"]` of a DataBundle ({} or missing means identity)."""
        declared = (extras or {}).get("transforms") or {}
        if not isinstance(declared, Mapping):
            raise ConfigError(f'extras["transforms"] must be a dict like {{"input": "log"}}, got {declared!r}.')
        unknown = sorted(set(declared) - {"input", "output"})
        if unknown:
            raise ConfigError(f'extras["transforms"] has unknown keys {unknown}; use "input" and "output".')
        return cls(input=declared.get("input", "identity"), output=declared.get("output", "identity"))

    @property
    def is_identity(self) -> bool:
        """True when the network works in the original space."""
        return self.input == "identity" and self.output == "identity"

    def original_inputs(self, x_net: Tensor) -> Tensor:
        """Undo the input transform: the original x whose transform is `x_net`."""
        return _TORCH[_INVERSE[self.input]](x_net)

    def network_inputs(self, x: Tensor) -> Tensor:
        """Apply the input transform to original inputs."""
        return _TORCH[self.input](x)

    def original_outputs(self, y_net: Tensor) -> Tensor:
        """Apply the output transform to network outputs."""
        return _TORCH[self.output](y_net)

    @property
    def is_monomial(self) -> bool:
        """True for log inputs with an exp output: the formula is a product of powers."""
        return self.input == "log" and self.output == "exp"

    def display_parameters(self, coefficients: Sequence[float], intercept: float) -> tuple[list[float], float]:
        """Parameters as a formula shows them: (coefficients, constant), where the constant is
        the factor e^c for a monomial and the intercept c otherwise."""
        return list(coefficients), math.exp(intercept) if self.is_monomial else float(intercept)

    def expression(
        self, coefficients: Sequence[sympy.Expr], constant: sympy.Expr, symbols: Sequence[sympy.Symbol]
    ) -> sympy.Expr:
        """The original-space expression of one output, from its displayed parameters.

        `output(a1*input(x1) + ... + an*input(xn) + constant)`; a monomial reads
        `constant * x1^a1 * ... * xn^an`.
        """
        if self.is_monomial:
            return constant * sympy.Mul(*[s**a for s, a in zip(symbols, coefficients)])
        inner = sympy.Add(*[a * _SYMPY[self.input](s) for s, a in zip(symbols, coefficients)]) + constant
        return _SYMPY[self.output](inner)

    def article_text(self, coefficients: Sequence[float], constant: float, names: Sequence[str], digits: int) -> str:
        """Right-hand side in the article's rounded style, from the displayed parameters."""
        if self.is_monomial:
            terms = [f"{name}^{_rounded(a, digits)}" for name, a in zip(names, coefficients)]
            return " * ".join([_rounded(constant, digits), *terms])
        wrap = (lambda s: s) if self.input == "identity" else (lambda s: f"{self.input}({s})")
        inner = " + ".join(
            [f"{_rounded(a, digits)}*{wrap(name)}" for name, a in zip(names, coefficients)] + [_rounded(constant, digits)]
        )
        return inner if self.output == "identity" else f"{self.output}({inner})"


def _rounded(value: float, digits: int) -> str:
    """`str(round(value, digits))`, the article's number format (so -0.001 prints as -0.0)."""
    return str(round(float(value), digits))

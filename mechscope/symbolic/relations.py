"""Seed 002's weight relations for a one-unit ReLU network `w2 * max(0, W1 . x + b1) + b2`.

While the unit is active the network is `(w2 W1) . x + (w2 b1 + b2)`, so fitting
`m . x + c` needs `w2 * W1_i = m_i` and `w2 * b1 + b2 = c`. For the plain sum (and the
product in log space) the article writes the same as `w2 * W1_i = 1` and `b2 = -w2 * b1`.

Example:
    >>> rel = article_relations(model, data.x_test[:4], coefficients=[1.0] * 5, constant=0.0)
    >>> all(r.holds for r in rel.values())
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError, UnsupportedModelError
from mechscope.symbolic.chain import ActivationStep, AffineStep, trace_chain

__all__ = ["Relation", "article_relations", "OneUnitWeights", "one_unit_weights"]


@dataclass(frozen=True)
class Relation:
    """One equation between learned weights, checked at a stated tolerance."""

    json_extra: ClassVar[tuple[str, ...]] = ("holds",)

    statement: str  # e.g. "w2 * W1_1 = 1"
    value: float  # left-hand side from the weights
    expected: float  # right-hand side
    tolerance: float  # |value - expected| <= tolerance counts as holding

    @property
    def holds(self) -> bool:
        """True when |value - expected| <= tolerance."""
        return abs(self.value - self.expected) <= self.tolerance


@dataclass(frozen=True)
class OneUnitWeights:
    """The four parameters of a one-unit ReLU network, in float64."""

    w1: Tensor  # W1, (n_features,)
    b1: float
    w2: float
    b2: float


def one_unit_weights(model: nn.Module, example: Tensor) -> OneUnitWeights:
    """Read W1, b1, w2, b2 from a network that is `Linear(n, 1) -> ReLU -> Linear(1, 1)`.

    Raises:
        UnsupportedModelError: The model has another shape (more units, layers or outputs).
    """
    chain = trace_chain(model, example)
    steps = chain.steps
    shape_ok = (
        len(steps) == 3
        and isinstance(steps[0], AffineStep)
        and isinstance(steps[1], ActivationStep)
        and steps[1].negative_slope == 0.0
        and isinstance(steps[2], AffineStep)
        and steps[0].weight.shape[0] == 1
        and steps[2].weight.shape == (1, 1)
    )
    if not shape_ok:
        layout = " -> ".join(
            f"{s.name}({s.weight.shape[1]}->{s.weight.shape[0]})" if isinstance(s, AffineStep) else s.name
            for s in steps
        )
        raise UnsupportedModelError(
            f"The article's relations need Linear(n, 1) -> ReLU -> Linear(1, 1); {type(model).__name__} is "
            f"{layout}. Read its regions with extract_regions instead."
        )
    first, last = cast(AffineStep, steps[0]), cast(AffineStep, steps[2])
    return OneUnitWeights(
        w1=first.weight[0].clone(), b1=float(first.bias[0]), w2=float(last.weight[0, 0]), b2=float(last.bias[0])
    )


def article_relations(
    model: nn.Module,
    example: Tensor,
    *,
    coefficients: Sequence[float],
    constant: float,
    tolerance: float = 1e-2,
) -> dict[str, Relation]:
    """Check the article's relations between a one-unit network's weights and the target function.

    For `coefficients` all 1 and `constant` 0 (sum, product in log space) the relations are
    "w2 * W1_i = 1" and "b2 = -w2 * b1"; otherwise "w2 * W1_i = m_i" and "w2 * b1 + b2 = c".

    Args:
        model: A `Linear(n, 1) -> ReLU -> Linear(1, 1)` network such as TinyReLU(hidden=1).
        example: A small input batch (traces the layer order).
        coefficients: The target's m_1..m_n.
        constant: The target's c.
        tolerance: Absolute tolerance of every relation (the article uses 1e-3).

    Returns:
        Name -> Relation, names "w2*W1_1" ... "w2*W1_n" and "b2" (sum form) or "w2*b1+b2".

    Raises:
        UnsupportedModelError: The model is not a one-unit ReLU network.
        ConfigError: The number of coefficients differs from the inputs, or tolerance < 0.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"tolerance must be a finite number >= 0, got {tolerance!r}; the article uses 1e-3.")
    weights = one_unit_weights(model, example)
    target = torch.as_tensor(list(coefficients), dtype=torch.float64, device="cpu")
    if target.shape != weights.w1.shape:
        raise ConfigError(
            f"got {target.numel()} coefficients for a network with {weights.w1.numel()} inputs; pass one per input."
        )
    is_sum = bool(torch.all(target == 1.0)) and float(constant) == 0.0
    relations: dict[str, Relation] = {}
    for i, (w, m) in enumerate(zip(weights.w1.tolist(), target.tolist()), start=1):
        expected = "1" if is_sum else f"m_{i}"
        relations[f"w2*W1_{i}"] = Relation(f"w2 * W1_{i} = {expected}", weights.w2 * w, float(m), tolerance)
    if is_sum:
        relations["b2"] = Relation("b2 = -w2 * b1", weights.b2, -weights.w2 * weights.b1, tolerance)
    else:
        relations["w2*b1+b2"] = Relation(
            "w2 * b1 + b2 = c", weights.w2 * weights.b1 + weights.b2, float(constant), tolerance
        )
    return relations

"""LinearProbe: softmax regression for categorical groups, ridge regression for continuous ones.

Continuous groups are solved in closed form (`(X^T X / n + alpha I) W = X^T Y / n` on
centred data). Categorical groups minimise the mean cross-entropy plus
`alpha / 2 * ||coef||^2` with full-batch L-BFGS from zero weights: the problem is convex,
so the result does not depend on a seed. Repeated (example, label) rows are merged
into one weighted row first, which leaves the objective unchanged. Inputs are standardised internally
(`standardize=True`); `coef_` and `intercept_` are always reported in the original
activation units, so `x @ coef_.T + intercept_` reproduces `decision_function(x)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mechscope.errors import ConfigError
from mechscope.probes.base import HeadSpec, Probe, distinct_rows

__all__ = ["LinearProbe"]


class LinearProbe(Probe):
    """A linear read-out per label group.

    Args:
        alpha: L2 penalty on the weights (per example: mean loss + alpha / 2 * ||coef||^2),
            on standardised inputs. The intercept is not penalised.
        standardize: Centre and scale each input feature before fitting.
        max_iter: L-BFGS iterations for the categorical heads.
        tol: L-BFGS gradient tolerance.

    Fitted attributes:
        coef_: Weights (n_outputs, n_features) in input units; rows follow `heads_`.
        intercept_: Biases (n_outputs,).
        n_iter_: L-BFGS iterations run (0 without categorical groups).

    Example:
        >>> probe = LinearProbe().fit(acts_train, {"a": a_train, "b": b_train})
        >>> probe.score_groups(acts_test, {"a": a_test, "b": b_test})
        {'a': 1.0, 'b': 0.98}
    """

    def __init__(
        self, *, alpha: float = 1e-3, standardize: bool = True, max_iter: int = 200, tol: float = 1e-6
    ) -> None:
        self.alpha = alpha
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (
            math.isfinite(self.alpha) and self.alpha >= 0
        ):
            raise ConfigError(f"alpha must be a finite number >= 0, got {self.alpha!r}; e.g. alpha=1e-3.")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"max_iter must be a positive integer, got {self.max_iter!r}.")
        if not isinstance(self.tol, (int, float)) or self.tol <= 0:
            raise ConfigError(f"tol must be a positive number, got {self.tol!r}.")

    def _fit(self, x: Tensor, heads: tuple[HeadSpec, ...], y_index: Tensor, y_value: Tensor) -> None:
        # Repeated (example, label) rows are merged into weighted rows: the objective is unchanged.
        x, y_index, y_value, weights = distinct_rows(x, y_index, y_value)
        flat = x.reshape(x.shape[0], -1).double()
        w = weights.double()[:, None]  # (batch, 1), sums to 1
        d = flat.shape[1]
        mean = (w * flat).sum(dim=0) if self.standardize else flat.new_zeros(d)
        scale = (w * (flat - mean) ** 2).sum(dim=0).sqrt() if self.standardize else flat.new_ones(d)
        scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))  # constant features stay unscaled
        z = (flat - mean) / scale  # (batch, n_features)
        weight = flat.new_zeros(heads[-1].stop, d)
        bias = flat.new_zeros(heads[-1].stop)

        cont_cols = [c for h in heads if h.kind == "continuous" for c in range(h.start, h.stop)]
        if cont_cols:
            weight[cont_cols], bias[cont_cols] = _ridge(z, y_value.double(), w, self.alpha)
        cat_heads = [h for h in heads if h.kind == "categorical"]
        self.n_iter_ = 0
        if cat_heads:
            cat_w, cat_b, self.n_iter_ = _softmax_regression(
                z, y_index, w[:, 0], cat_heads, self.alpha, self.max_iter, self.tol
            )
            cat_cols = [c for h in cat_heads for c in range(h.start, h.stop)]
            weight[cat_cols], bias[cat_cols] = cat_w, cat_b
        coef = weight / scale  # back to input units
        self.coef_ = coef.float()
        self.intercept_ = (bias - coef @ mean).float()

    def _decision(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1) @ self.coef_.to(x.device).T + self.intercept_.to(x.device)


def _ridge(z: Tensor, y: Tensor, w: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Closed-form weighted ridge on centred data: weights (n_outputs, n_features), biases (n_outputs,).

    `w` (batch, 1) are example weights summing to 1, so `zc.T @ (w * zc)` is `X^T X / n`.
    """
    d = z.shape[1]
    z_mean, y_mean = (w * z).sum(dim=0), (w * y).sum(dim=0)
    zc, yc = z - z_mean, y - y_mean
    gram = zc.T @ (w * zc) + alpha * torch.eye(d, dtype=z.dtype, device=z.device)
    # lstsq rather than solve: with alpha = 0 and collinear features the Gram matrix is singular. It runs
    # on the CPU: CUDA's lstsq has only the "gels" driver, which assumes a full-rank matrix.
    coef = torch.linalg.lstsq(gram.cpu(), (zc.T @ (w * yc)).cpu()).solution.T.to(z.device)  # (n_outputs, n_features)
    return coef, y_mean - coef @ z_mean


def _softmax_regression(
    z: Tensor, y_index: Tensor, w: Tensor, heads: list[HeadSpec], alpha: float, max_iter: int, tol: float
) -> tuple[Tensor, Tensor, int]:
    """Multinomial logistic regression per head (weighted by `w`), fitted jointly by L-BFGS."""
    d = z.shape[1]
    widths = [h.stop - h.start for h in heads]
    weight = z.new_zeros(sum(widths), d, requires_grad=True)
    bias = z.new_zeros(sum(widths), requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-10,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        logits = z @ weight.T + bias
        per_row = logits.new_zeros(z.shape[0])
        start = 0
        for k, width in enumerate(widths):
            per_row = per_row + F.cross_entropy(logits[:, start : start + width], y_index[:, k], reduction="none")
            start += width
        loss = (per_row * w).sum() + 0.5 * alpha * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    n_iter = int(optimizer.state[weight].get("n_iter", 0))
    return weight.detach(), bias.detach(), n_iter

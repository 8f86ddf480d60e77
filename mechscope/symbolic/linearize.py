"""Local linearization: the tangent affine map of any differentiable network at chosen points.

A network with smooth activations (tanh, sigmoid, softmax) has no finite set of affine
pieces, so no exact global formula exists. `linearize` gives the first-order Taylor
expansion `f(x) ~ f(x0) + J(x0) (x - x0)` at each point x0 instead; every result is
labelled local, and its error is measured on the data near x0 and on all of it, so it
cannot pass for a global formula.

Example:
    >>> lin = linearize(model, data.x_test.mean(0, keepdim=True), data=data.x_test)
    >>> lin.label
    'local linearization (first-order Taylor expansion at each point); not a global formula'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.modes import eval_mode, model_device
from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError
from mechscope.symbolic.chain import check_weights
from mechscope.symbolic.formula import article_formula
from mechscope.symbolic.regions import network_outputs

__all__ = ["LocalLinearization", "linearize", "LOCAL_LABEL"]

LOCAL_LABEL = "local linearization (first-order Taylor expansion at each point); not a global formula"


@dataclass(frozen=True)
class LocalLinearization:
    """Tangent affine maps of a network at chosen points.

    Attributes:
        points: Expansion points x0, shape (n_points, n_features) float64.
        coefficients: Jacobians J(x0), shape (n_points, n_outputs, n_features) float64.
        intercepts: f(x0) - J(x0) x0, shape (n_points, n_outputs) float64.
        near_fraction: Fraction of the data counted as "near" each point.
        near_max_abs_error: Largest error of each tangent map on the data nearest its point
            (n_points,), NaN without data.
        data_max_abs_error: Largest error of each tangent map on all the data (n_points,),
            NaN without data; large values show how local the approximation is.
    """

    points: Tensor
    coefficients: Tensor
    intercepts: Tensor
    near_fraction: float
    near_max_abs_error: Tensor
    data_max_abs_error: Tensor

    @property
    def label(self) -> str:
        """The explicit "local, not global" label every report must carry."""
        return LOCAL_LABEL

    def formulas(self, digits: int = 2) -> list[str]:
        """One article-style formula per expansion point, each marked local."""
        formulas = []
        for i in range(self.points.shape[0]):
            lines = article_formula(self.coefficients[i], self.intercepts[i], digits=digits).splitlines()
            tangent = "\n".join(line.replace(" = ", " ~ ", 1) for line in lines)
            formulas.append(f"near x0 = {[round(v, digits) for v in self.points[i].tolist()]}:\n{tangent}")
        return formulas

    def __json__(self) -> dict[str, Any]:
        """One entry per expansion point (its map, formula and errors); the label travels with the numbers."""
        single = self.coefficients.shape[1] == 1
        return {
            "label": self.label,
            "near_fraction": self.near_fraction,
            "points": [
                {
                    "point": self.points[i],
                    "coefficients": self.coefficients[i, 0] if single else self.coefficients[i],
                    "intercept": self.intercepts[i, 0] if single else self.intercepts[i],
                    "formula": formula,
                    "near_max_abs_error": self.near_max_abs_error[i],
                    "data_max_abs_error": self.data_max_abs_error[i],
                }
                for i, formula in enumerate(self.formulas())
            ],
        }


def linearize(
    model: nn.Module,
    points: Tensor,
    *,
    data: Tensor | None = None,
    near_fraction: float = 0.01,
) -> LocalLinearization:
    """Tangent affine map of `model` at each point, by autograd, with its error on nearby data.

    Works for any differentiable model whose examples are independent in eval mode.

    Args:
        model: The network; run in eval mode (its mode is restored afterwards).
        points: Expansion points (n_points, ...) in the model's input space.
        data: Optional data (batch, ...) to measure each map's error on.
        near_fraction: Fraction of `data` (nearest in Euclidean distance) that counts as near.

    Returns:
        LocalLinearization with Jacobians, intercepts and measured errors.

    Raises:
        DataError: `points` is empty, `data` has another example shape, either holds NaN/inf,
            or the model's weights do.
        ConfigError: near_fraction is not in (0, 1].
    """
    if not 0.0 < near_fraction <= 1.0:
        raise ConfigError(f"near_fraction must be in (0, 1], got {near_fraction!r}; e.g. 0.01.")
    if not isinstance(points, Tensor) or points.dim() < 2 or points.shape[0] == 0:
        raise DataError("points must be a non-empty batch (n_points, n_features); add a batch dimension.")
    if data is not None and tuple(data.shape[1:]) != tuple(points.shape[1:]):
        raise DataError(f"data examples have shape {tuple(data.shape[1:])}, points {tuple(points.shape[1:])}.")
    check_weights(model)
    if data is not None:
        check_finite(data, "data")
    check_finite(points, "points")
    points = points.detach().cpu()  # the maps and their errors are computed on the CPU, in float64
    data = None if data is None else data.detach().cpu()
    jacobians, values = _jacobians(model, points)
    flat = points.reshape(points.shape[0], -1).to(torch.float64)
    intercepts = values - torch.einsum("pon,pn->po", jacobians, flat)
    near = torch.full((points.shape[0],), math.nan, dtype=torch.float64, device="cpu")
    everywhere = near.clone()
    if data is not None and data.shape[0]:
        xs = data.reshape(data.shape[0], -1).to(torch.float64)
        reference = network_outputs(model, data, jacobians.shape[1])
        k = max(1, int(round(near_fraction * xs.shape[0])))
        for i in range(points.shape[0]):
            error = (xs @ jacobians[i].T + intercepts[i] - reference).abs().amax(dim=1)  # (batch,)
            nearest = torch.topk(torch.cdist(flat[i : i + 1], xs)[0], k, largest=False).indices
            near[i], everywhere[i] = error[nearest].max(), error.max()
    return LocalLinearization(
        points=flat,
        coefficients=jacobians,
        intercepts=intercepts,
        near_fraction=float(near_fraction),
        near_max_abs_error=near,
        data_max_abs_error=everywhere,
    )


def _jacobians(model: nn.Module, points: Tensor) -> tuple[Tensor, Tensor]:
    """Input Jacobians (n_points, n_outputs, n_features) and outputs (n_points, n_outputs), float64."""
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    x = points.detach().to(device=model_device(model), dtype=dtype).clone().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        out = model(x)
        out = out.reshape(out.shape[0], -1)  # (n_points, n_outputs)
        rows = []
        for k in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[:, k].sum(), x, retain_graph=k + 1 < out.shape[1])
            rows.append(grad.reshape(grad.shape[0], -1))
    jacobians = torch.stack(rows, dim=1).to(torch.float64).cpu()
    return jacobians, out.detach().to(torch.float64).cpu()

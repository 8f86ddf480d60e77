"""Evidence that a visualisation is real: the activation it reaches vs the best dataset example.

For every rendered row, the objective is evaluated on the rendered image and, for the
same unit, on every dataset image. A ratio >= 1 means the picture excites the unit at
least as much as anything in the data does.

Example:
    >>> result = render(model, channel("relu2", range(16)), space)
    >>> ev = evidence(model, channel("relu2", range(16)), result.images, data.all_inputs(), space=space)
    >>> ev.fraction_reached()
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture.modes import eval_mode, model_device
from mechscope.data.dtypes import explain_dtype_errors
from mechscope.data.finite import check_finite
from mechscope.errors import ConfigError, DataError
from mechscope.featurevis._forward import forward_until, reader
from mechscope.featurevis.objectives import LayerReader, Objective
from mechscope.featurevis.param import InputSpace

__all__ = ["Evidence", "evidence"]


@dataclass(frozen=True)
class Evidence:
    """Per row: the activation a rendered image reaches and the dataset's best.

    Attributes:
        description: The objective's description.
        units: Unit of each row (row index for objectives that fix none).
        activation: Objective on each rendered image.
        dataset_max: Largest value of the same unit over the dataset.
        dataset_argmax: Index of the dataset example reaching it.
        ratio: activation / dataset_max; NaN where dataset_max <= 0 (the unit never fires on
            the data, so the ratio means nothing).
    """

    description: str
    units: tuple[int, ...]
    activation: tuple[float, ...]
    dataset_max: tuple[float, ...]
    dataset_argmax: tuple[int, ...]
    ratio: tuple[float, ...]

    @property
    def defined(self) -> tuple[bool, ...]:
        """Rows whose unit fires somewhere in the dataset (dataset_max > 0), so the ratio exists."""
        return tuple(m > 0 for m in self.dataset_max)

    def fraction_reached(self) -> float:
        """Share of rows with a defined ratio whose image reaches the dataset max (ratio >= 1).

        Units the dataset never activates (dataset_max <= 0) are left out; NaN if none is left.
        """
        defined = [r for r, ok in zip(self.ratio, self.defined) if ok]
        return sum(r >= 1 for r in defined) / len(defined) if defined else math.nan

    def __json__(self) -> dict[str, Any]:
        """The headline shares, then one entry per row (unit, activation, dataset max and ratio)."""
        return {
            "description": self.description,
            "fraction_reached": self.fraction_reached(),
            "n_never_active": self.defined.count(False),
            "units": [
                {
                    "unit": u,
                    "activation": a,
                    "dataset_max": m,
                    "dataset_argmax": i,
                    "ratio": r,
                }
                for u, a, m, i, r in zip(self.units, self.activation, self.dataset_max, self.dataset_argmax, self.ratio)
            ],
        }


def evidence(
    model: nn.Module,
    objective: Objective,
    images: Tensor,
    data: Tensor,
    *,
    space: InputSpace | None = None,
    batch_size: int = 512,
) -> Evidence:
    """Compare rendered images with the dataset's best example, unit by unit.

    Args:
        model: The model the images were rendered for.
        objective: The objective they were rendered with (one that scores each unit
            independently: no diversity term).
        images: Rendered images (batch, channel, height, width), one row per unit.
        data: Dataset images in the same value range as `images`.
        space: Normalisation applied to both before the model (None: none).
        batch_size: Dataset images per forward pass.

    Returns:
        Evidence with activation, dataset max, argmax and ratio per row.

    Raises:
        ConfigError: the objective couples rows, or rows and units disagree.
        DataError: `data` is empty or shaped unlike `images`, either holds NaN/inf, or
            their dtype differs from the model's parameters.
    """
    if not isinstance(data, Tensor) or data.dim() != images.dim() or data.shape[1:] != images.shape[1:]:
        shape = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
        raise DataError(
            f"data must be images shaped like the rendered ones (batch, {', '.join(map(str, images.shape[1:]))}), "
            f"got {shape}."
        )
    if data.shape[0] == 0:
        raise DataError("data holds no images; pass the dataset the model was trained on.")
    check_finite(images, "images", fix="Render them again (e.g. with a lower learning rate)")
    check_finite(data, "data")
    n_rows = objective.n_rows or images.shape[0]
    if images.shape[0] != n_rows:
        raise ConfigError(f"{objective.description!r} has {n_rows} units but {images.shape[0]} images were given.")
    names = sorted(name for name in objective.layers if name is not None)
    device = model_device(model)
    normalize = space.normalize if space is not None else (lambda t: t)

    with eval_mode(model):
        with torch.no_grad(), explain_dtype_errors(model, data, "data"):
            reached = _table(model, objective, normalize(images.to(device)), names)  # (batch, n_rows or 1)
            activation = reached.diagonal() if reached.shape[1] == n_rows else reached[:, 0]
            best = torch.full((n_rows,), -math.inf, device="cpu")  # `_table` hands its scores back on the CPU
            best_index = torch.zeros(n_rows, dtype=torch.long, device="cpu")
            for start in range(0, data.shape[0], batch_size):
                chunk = normalize(data[start : start + batch_size].to(device))
                table = _table(model, objective, chunk, names).expand(-1, n_rows)
                values, index = table.max(dim=0)
                better = values > best
                best = torch.where(better, values, best)
                best_index = torch.where(better, index + start, best_index)
    act = [float(v) for v in activation]
    top = [float(v) for v in best]
    ratio = tuple(a / m if m > 0 else math.nan for a, m in zip(act, top))
    units = objective.units if objective.units is not None else tuple(range(n_rows))
    return Evidence(objective.description, units, tuple(act), tuple(top), tuple(int(i) for i in best_index), ratio)


def _table(model: nn.Module, objective: Objective, x: Tensor, names: list[str]) -> Tensor:
    output, store = forward_until(model, x, names, need_output=None in objective.layers)
    return objective.table(LayerReader(reader(output, store), model)).float().cpu()

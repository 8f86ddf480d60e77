"""Attribution patching: the first-order estimate of every cell's patching effect from one backward pass.

The metric after patching a cell is approximated by its Taylor expansion around the run
being patched: `metric(base) + sum over the cell of (source - base) * d metric / d activation`
(Nanda 2023, "Attribution patching"). One forward and one backward pass of the base run
score every cell of every layer; `compare` sets the estimate beside exact activation
patching, cell by cell, so one sees where the linear approximation fails.

Example:
    >>> approx = attribution_patching(model, clean, corrupt, layers, metric, along="pos")
    >>> exact = activation_patching(model, clean, corrupt, layers, metric, along="pos")
    >>> compare(exact, approx).max_error
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mechscope.capture import capture, select_output
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.outputs import OutputSpec
from mechscope.errors import ConfigError
from mechscope.patching.activation import (
    Direction,
    PatchingResult,
    check_sweep,
    stack_cells,
    recovered,
    run_pair,
)
from mechscope.patching.cells import Along, cell_axis
from mechscope.patching.metrics import Metric

__all__ = ["attribution_patching", "PatchingComparison", "compare"]


@dataclass(frozen=True)
class PatchingComparison:
    """Attribution patching beside exact patching: the per-cell error of the estimate."""

    exact: PatchingResult
    approx: PatchingResult
    error: Tensor  # (layer, cell) approx - exact, in recovered fraction

    @property
    def max_error(self) -> float:
        """Largest absolute error over the cells."""
        return float(self.error.abs().nan_to_num(0.0).max())

    @property
    def mean_error(self) -> float:
        """Mean absolute error over the cells."""
        finite = self.error[~self.error.isnan()]
        return float(finite.abs().mean()) if finite.numel() else 0.0


def attribution_patching(
    model: nn.Module,
    clean: Tensor,
    corrupt: Tensor,
    layers: str | Sequence[str],
    metric: Metric,
    *,
    along: Along = "pos",
    direction: Direction = "denoise",
    output: OutputSpec = None,
) -> PatchingResult:
    """Estimate `activation_patching` for every cell from the gradient of the base run.

    Same arguments and result as `mechscope.patching.activation_patching` (with
    `method="attribution"`); the base run is the corrupt one when denoising, the clean one
    when noising.
    """
    names = check_sweep(model, clean, corrupt, layers, direction, 1)
    runs = run_pair(model, clean, corrupt, names, metric, output=output)
    base_acts, source_acts = runs.base_and_source(direction)
    base_input = corrupt if direction == "denoise" else clean
    device = model_device(model)
    examples = torch.arange(clean.shape[0], device=device)
    with eval_mode(model), torch.enable_grad(), capture(model, names, grads=True) as store:
        out = select_output(model(base_input.to(device)), output)
        base_metric = metric(out, examples).double().mean()
        base_metric.backward()
    model.zero_grad(set_to_none=True)
    rows = []
    for name in names:
        delta = (source_acts[name] - base_acts[name]).double() * store.grad(name).double()
        axis = cell_axis(model, name, delta.shape, along)
        rows.append(delta.transpose(0, axis).reshape(delta.shape[axis], -1).sum(dim=1).cpu())
    raw = stack_cells(rows) + float(base_metric.detach())
    return PatchingResult(layers=names, along=along, n_cells=[len(r) for r in rows], values=recovered(raw, runs),
                          metric_values=raw, clean_metric=runs.clean_metric, corrupt_metric=runs.corrupt_metric,
                          metric=metric.name, direction=direction, method="attribution")


def compare(exact: PatchingResult, approx: PatchingResult) -> PatchingComparison:
    """Per-cell error of an attribution patching estimate against exact patching of the same sweep.

    Raises:
        ConfigError: the two results are not of the same layers, cells and direction.
    """
    if exact.layers != approx.layers or exact.n_cells != approx.n_cells or exact.direction != approx.direction:
        raise ConfigError("compare needs two results of the same layers, cells and direction.")
    return PatchingComparison(exact=exact, approx=approx, error=approx.values - exact.values)

"""Activation patching: put one run's activation into another, cell by cell, and measure the metric.

Denoising (the default) runs the corrupt input with one cell of a layer set to its value in
the clean run: a cell that restores the metric carries the information. Noising runs the
clean input with one cell set to its corrupt value: a cell that destroys the metric is
needed. Either way a cell's score is the recovered fraction
`(metric(patched) - metric(corrupt)) / (metric(clean) - metric(corrupt))`: 1 where the run
behaves like the clean one, 0 where it behaves like the corrupt one.

A sweep is batched: many cells are patched in one forward pass (`max_batch` rows at a time),
and the layers before the patched one run once per pass: the batch becomes one block of rows
per cell at the patched layer's output. A sweep whose cells all fit in `max_batch` rows runs in
one pass for all layers. Models that cannot take a batch that grows
mid-forward (checked on the first cell of every layer against a full forward) get the inputs
repeated once per cell instead; the results are the same.

Example:
    >>> result = activation_patching(model, clean, corrupt, ["blocks.0.resid_pre", "blocks.0.resid_post"],
    ...                              logit_diff(answer, wrong), along="pos")
    >>> result.values.shape        # (layer, cell): recovered fraction
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mechscope.capture import capture, patch, select_output
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import resolve_layers
from mechscope.capture.outputs import OutputSpec
from mechscope.errors import ConfigError, DataError
from mechscope.patching.cells import Along, cell_axis, repeat_rows, write_cells
from mechscope.patching.metrics import Metric

__all__ = ["Direction", "PatchingResult", "Runs", "activation_patching", "run_pair", "recovered", "check_sweep", "stack_cells"]

Direction = Literal["denoise", "noise"]
"""denoise: clean activations into the corrupt run; noise: corrupt activations into the clean run."""


@dataclass(frozen=True)
class PatchingResult:
    """A patching sweep: one score per (layer, cell).

    Attributes:
        layers: Patched layers, in order (rows).
        along: What the cells are ("pos", "head", "unit" or an axis index).
        n_cells: Cells per layer (rows are padded with NaN to the widest layer).
        values: (layer, cell) recovered fraction (see the module docstring).
        metric_values: (layer, cell) the metric's mean over the examples, patched.
        clean_metric: Mean metric of the clean run.
        corrupt_metric: Mean metric of the corrupt run.
        metric: The metric's name.
        direction: "denoise" or "noise".
        method: "exact" (activation patching) or "attribution" (the linear estimate).
    """

    layers: list[str]
    along: str | int
    n_cells: list[int]
    values: Tensor
    metric_values: Tensor
    clean_metric: float
    corrupt_metric: float
    metric: str
    direction: Direction
    method: str = "exact"

    def cell(self, layer: str, index: int) -> float:
        """Recovered fraction of cell `index` of `layer`."""
        return float(self.values[self.layers.index(layer), index])


@dataclass(frozen=True)
class Runs:
    """The clean and corrupt runs a sweep starts from: activations (n, ...) and mean metrics."""

    clean: dict[str, Tensor]
    corrupt: dict[str, Tensor]
    clean_metric: float
    corrupt_metric: float

    def base_and_source(self, direction: Direction) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(activations of the run that is patched, activations patched into it)."""
        return (self.corrupt, self.clean) if direction == "denoise" else (self.clean, self.corrupt)


def activation_patching(
    model: nn.Module,
    clean: Tensor,
    corrupt: Tensor,
    layers: str | Sequence[str],
    metric: Metric,
    *,
    along: Along = "pos",
    direction: Direction = "denoise",
    output: OutputSpec = None,
    max_batch: int = 512,
    progress: bool = False,
) -> PatchingResult:
    """Patch every cell of every layer, one cell at a time, and score it.

    Args:
        model: Any module taking a batched tensor.
        clean: Inputs (n, ...) on which the model behaves as it should.
        corrupt: Inputs (n, ...) of the same shape that change the answer.
        layers: Layer names (`name` or `name:k`).
        metric: Per-example measure of the output (`mechscope.patching.metrics`).
        along: Which axis of each layer's output holds the cells (`cell_axis`).
        direction: "denoise" or "noise" (module docstring).
        output: Which part of the model's output holds the logits (`select_output`).
        max_batch: Rows per forward pass; cells are grouped to fill it.
        progress: Show a progress bar over layers.

    Returns:
        PatchingResult with one recovered fraction per (layer, cell).

    Raises:
        DataError: clean and corrupt differ in shape, or give the same metric (nothing to recover).
        ConfigError: a bad `direction`, `max_batch` or `along`.
    """
    names = check_sweep(model, clean, corrupt, layers, direction, max_batch)
    runs = run_pair(model, clean, corrupt, names, metric, output=output)
    base_acts, source_acts = runs.base_and_source(direction)
    base_input = corrupt if direction == "denoise" else clean
    n = clean.shape[0]
    axes = [cell_axis(model, name, base_acts[name].shape, along) for name in names]
    sizes = [int(base_acts[name].shape[axis]) for name, axis in zip(names, axes, strict=True)]
    if sum(sizes) * n <= max_batch:  # a small sweep: every cell of every layer in one pass
        flat = _sweep_at_once(model, base_input, names, axes, [source_acts[name] for name in names], metric, output)
        per_layer = list(flat.split(sizes))
    else:
        per_layer = [_sweep_layer(model, base_input, name, axis, source_acts[name], metric, output, max_batch // n or 1)
                     for name, axis in tqdm(list(zip(names, axes, strict=True)), desc="patching", unit="layer",
                                            disable=None if progress else True)]
    raw = stack_cells(per_layer)
    return PatchingResult(layers=names, along=along, n_cells=[len(v) for v in per_layer], values=recovered(raw, runs),
                          metric_values=raw, clean_metric=runs.clean_metric, corrupt_metric=runs.corrupt_metric,
                          metric=metric.name, direction=direction)


def run_pair(model: nn.Module, clean: Tensor, corrupt: Tensor, layers: list[str], metric: Metric, *,
             output: OutputSpec = None) -> Runs:
    """Run clean and corrupt inputs once each, recording `layers` and the mean metric."""
    device = model_device(model)
    acts: list[dict[str, Tensor]] = []
    means: list[float] = []
    examples = torch.arange(clean.shape[0], device=device)
    with eval_mode(model), torch.no_grad():
        for x in (clean, corrupt):
            with capture(model, layers) as store:
                out = select_output(model(x.to(device)), output)
            acts.append({name: store.act(name) for name in layers})
            means.append(float(metric(out, examples).double().mean()))
    return Runs(clean=acts[0], corrupt=acts[1], clean_metric=means[0], corrupt_metric=means[1])


def recovered(metric_values: Tensor, runs: Runs) -> Tensor:
    """Recovered fraction of raw metric values: 0 at the corrupt run's metric, 1 at the clean run's.

    Raises:
        DataError: the clean and corrupt runs give the same metric.
    """
    gap = runs.clean_metric - runs.corrupt_metric
    if abs(gap) <= 1e-12 * max(1.0, abs(runs.clean_metric)):
        raise DataError(
            f"the clean and corrupt runs give the same metric ({runs.clean_metric:.6g}), so there is nothing to "
            "recover; choose corrupt inputs that change the answer."
        )
    return (metric_values - runs.corrupt_metric) / gap


def _sweep_layer(model: nn.Module, base: Tensor, layer: str, axis: int, source: Tensor, metric: Metric,
                 output: OutputSpec, cells_per_pass: int) -> Tensor:
    """Mean patched metric of every cell of `layer`, many cells per forward pass.

    The layers before `layer` run once per pass: the batch grows to one block of rows per cell
    only at `layer`'s output. A model that cannot take a batch that grows mid-forward (it
    raises, or its first cell differs from a full forward of that cell) is swept with the
    inputs repeated instead.
    """
    device = model_device(model)
    base, source = base.to(device), source.to(device)
    size = int(source.shape[axis])
    values = torch.empty(size, dtype=torch.float64)
    grow = True
    with eval_mode(model), torch.no_grad():
        for start in range(0, size, cells_per_pass):
            cells = torch.arange(start, min(start + cells_per_pass, size), device=device)
            chunk = None
            if grow:
                try:
                    chunk = _patched(model, base, layer, axis, source, cells, metric, output, grow=True)
                except RuntimeError:
                    chunk = None
                if chunk is not None and start == 0:
                    full = _patched(model, base, layer, axis, source, cells[:1], metric, output, grow=False)
                    chunk = chunk if torch.allclose(chunk[:1], full, rtol=1e-4, atol=1e-6) else None
                grow = chunk is not None
            if chunk is None:
                chunk = _patched(model, base, layer, axis, source, cells, metric, output, grow=False)
            values[start:start + len(cells)] = chunk
    return values


def _sweep_at_once(model: nn.Module, base: Tensor, layers: list[str], axes: list[int], sources: list[Tensor],
                   metric: Metric, output: OutputSpec) -> Tensor:
    """Mean patched metric of every cell of every layer (concatenated), in one forward pass.

    Block j of the rows patches one cell of one layer; the batch grows at whichever patched
    layer runs first. Checked against repeated inputs on the first cell of every layer; a model
    that fails the check (or raises) is swept with the inputs repeated.
    """
    device = model_device(model)
    base = base.to(device)
    sizes = [int(source.shape[axis]) for source, axis in zip(sources, axes, strict=True)]
    owner = torch.cat([torch.full((size,), i) for i, size in enumerate(sizes)])  # block -> layer
    index = torch.cat([torch.arange(size) for size in sizes])  # block -> cell within its layer
    plans = [torch.where(owner == i, index, -1) for i in range(len(layers))]
    firsts = torch.tensor([int((owner == i).nonzero()[0, 0]) for i in range(len(layers))])
    with eval_mode(model), torch.no_grad():
        try:
            values = _patched_many(model, base, layers, axes, sources, plans, metric, output, grow=True)
            check = _patched_many(model, base, layers, axes, sources, [p[firsts] for p in plans], metric, output,
                                  grow=False)
            if torch.allclose(values[firsts], check, rtol=1e-4, atol=1e-6):
                return values
        except RuntimeError:
            pass
        return _patched_many(model, base, layers, axes, sources, plans, metric, output, grow=False)


def _patched_many(model: nn.Module, base: Tensor, layers: list[str], axes: list[int], sources: list[Tensor],
                  plans: list[Tensor], metric: Metric, output: OutputSpec, *, grow: bool) -> Tensor:
    """Mean metric (k,) with block j patched as `plans[i][j]` says for layer i (-1: not that layer)."""
    n, k = base.shape[0], int(plans[0].shape[0])

    def put(i: int) -> Any:
        def hook(act: Tensor, *, hook: Any) -> Tensor:
            if grow and act.shape[0] == n and k > 1:
                act = repeat_rows(act, k)
            return write_cells(act, sources[i].to(act.device), axes[i], plans[i])
        return hook

    with patch(model, {name: put(i) for i, name in enumerate(layers)}):
        out = select_output(model(base if grow else repeat_rows(base, k)), output)
    if out.shape[0] != k * n:
        raise RuntimeError(f"the output has {out.shape[0]} rows, not {k * n}")
    examples = torch.arange(n, device=base.device).repeat(k)
    return metric(out, examples).double().reshape(k, n).mean(dim=1).cpu()


def _patched(model: nn.Module, base: Tensor, layer: str, axis: int, source: Tensor, cells: Tensor, metric: Metric,
             output: OutputSpec, *, grow: bool) -> Tensor:
    """Mean metric over the examples (k,) with cell `cells[j]` patched in block j of the rows."""
    n, k = base.shape[0], int(cells.shape[0])

    def put(act: Tensor, *, hook: Any) -> Tensor:
        return write_cells(repeat_rows(act, k) if grow else act, source, axis, cells)

    with patch(model, {layer: put}):
        out = select_output(model(base if grow else repeat_rows(base, k)), output)
    if out.shape[0] != k * n:
        raise RuntimeError(f"the output has {out.shape[0]} rows, not {k * n}")
    examples = torch.arange(n, device=base.device).repeat(k)
    return metric(out, examples).double().reshape(k, n).mean(dim=1).cpu()


def stack_cells(rows: list[Tensor]) -> Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), float("nan"), dtype=torch.float64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def check_sweep(model: nn.Module, clean: Tensor, corrupt: Tensor, layers: str | Sequence[str], direction: str,
           max_batch: int) -> list[str]:
    if not isinstance(clean, Tensor) or not isinstance(corrupt, Tensor):
        raise DataError(f"clean and corrupt must be tensors, got {type(clean).__name__} and {type(corrupt).__name__}.")
    if clean.shape != corrupt.shape or clean.dim() == 0 or clean.shape[0] == 0:
        raise DataError(
            f"clean and corrupt must be batches of the same shape, got {tuple(clean.shape)} and {tuple(corrupt.shape)}."
        )
    if direction not in ("denoise", "noise"):
        raise ConfigError(f"direction must be 'denoise' or 'noise', got {direction!r}.")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ConfigError(f"max_batch must be a positive integer, got {max_batch!r}.")
    return resolve_layers(model, layers)

"""Path patching: the effect of a sender on the metric through the receivers only.

Three runs (Wang et al. 2022; Goldowsky-Dill et al. 2023). (1) The clean and corrupt runs
record the sender, the receivers and the frozen layers. (2) The base run (corrupt when
denoising) with one sender cell set to its source value and every frozen layer held at its
base value, so the sender's change reaches the receivers only directly (or through layers not
frozen); the receivers' outputs are recorded. (3) The base run with only the receivers set to
those recorded values; its metric is the path's effect. Freezing every layer between sender
and receiver isolates the direct path. All sender cells are swept in batched passes.

Example:
    >>> result = path_patching(model, clean, corrupt, metric, sender="blocks.0.attn.heads",
    ...                        receivers=["blocks.1.attn.query"], frozen=["blocks.0.mlp"], along="head")
    >>> result.values            # (1, head): recovered fraction through that path
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture import capture, patch, select_output
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import resolve_layers
from mechscope.capture.outputs import OutputSpec
from mechscope.errors import ConfigError
from mechscope.patching.activation import Direction, PatchingResult, check_sweep, recovered, run_pair
from mechscope.patching.cells import Along, cell_axis, repeat_rows, write_cells
from mechscope.patching.metrics import Metric

__all__ = ["path_patching"]


def path_patching(
    model: nn.Module,
    clean: Tensor,
    corrupt: Tensor,
    metric: Metric,
    *,
    sender: str,
    receivers: str | Sequence[str],
    frozen: str | Sequence[str] = (),
    along: Along = "pos",
    direction: Direction = "denoise",
    output: OutputSpec = None,
    max_batch: int = 512,
) -> PatchingResult:
    """Score every cell of `sender` by its effect on the metric through `receivers` alone.

    Args:
        model: Any module taking a batched tensor.
        clean: Inputs (n, ...) on which the model behaves as it should.
        corrupt: Inputs of the same shape that change the answer.
        metric: Per-example measure of the output.
        sender: Layer whose cells are patched (`along` picks the axis of the cells).
        receivers: Layers that take the sender's effect; held at their run-(2) values in run (3).
        frozen: Layers held at their base values in run (2): the paths through them are cut.
        along: Axis of the sender's cells (`mechscope.patching.cells.cell_axis`).
        direction: "denoise" (clean sender into the corrupt run) or "noise".
        output: Which part of the model's output holds the logits.
        max_batch: Rows per forward pass.

    Returns:
        PatchingResult with one row (the sender) and one recovered fraction per sender cell.

    Raises:
        ConfigError: the sender is also a receiver or frozen, or a receiver is frozen.
    """
    receiver_names = resolve_layers(model, receivers)
    frozen_names = resolve_layers(model, frozen) if frozen else []
    (sender_name,) = check_sweep(model, clean, corrupt, sender, direction, max_batch)
    if sender_name in receiver_names or sender_name in frozen_names or set(receiver_names) & set(frozen_names):
        raise ConfigError("the sender, the receivers and the frozen layers must be different layers.")
    runs = run_pair(model, clean, corrupt, [sender_name, *receiver_names, *frozen_names], metric, output=output)
    base_acts, source_acts = runs.base_and_source(direction)
    base = (corrupt if direction == "denoise" else clean).to(model_device(model))
    n = base.shape[0]
    axis = cell_axis(model, sender_name, base_acts[sender_name].shape, along)
    size, per_pass = int(base_acts[sender_name].shape[axis]), max(max_batch // n, 1)
    values = torch.empty(size, dtype=torch.float64)
    for start in range(0, size, per_pass):
        cells = torch.arange(start, min(start + per_pass, size), device=base.device)
        received = _sender_run(model, base, cells, axis, sender_name, source_acts[sender_name],
                               {name: base_acts[name] for name in frozen_names}, receiver_names)
        values[start:start + len(cells)] = _receiver_run(model, base, received, metric, output, len(cells))
    raw = values[None]
    return PatchingResult(layers=[sender_name], along=along, n_cells=[size], values=recovered(raw, runs),
                          metric_values=raw, clean_metric=runs.clean_metric, corrupt_metric=runs.corrupt_metric,
                          metric=metric.name, direction=direction, method="path")


def _sender_run(model: nn.Module, base: Tensor, cells: Tensor, axis: int, sender: str, source: Tensor,
                frozen: dict[str, Tensor], receivers: list[str]) -> dict[str, Tensor]:
    """Run (2): sender cells patched, frozen layers held; return the receivers' outputs (k * n, ...)."""
    k = len(cells)

    def put(act: Tensor, *, hook: Any) -> Tensor:
        return write_cells(act, source.to(act.device), axis, cells)

    holds = {name: _hold(value, k) for name, value in frozen.items()}
    with eval_mode(model), torch.no_grad(), patch(model, {sender: put, **holds}), capture(model, receivers) as store:
        model(repeat_rows(base, k))
    return {name: store.act(name) for name in receivers}


def _receiver_run(model: nn.Module, base: Tensor, received: dict[str, Tensor], metric: Metric,
                  output: OutputSpec, k: int) -> Tensor:
    """Run (3): only the receivers set to their run-(2) outputs; the metric's mean per cell (k,)."""
    n = base.shape[0]
    sets = {name: (lambda act, *, hook, value=value: value.to(act.device, act.dtype)) for name, value in received.items()}
    with eval_mode(model), torch.no_grad(), patch(model, sets):
        out = select_output(model(repeat_rows(base, k)), output)
    examples = torch.arange(n, device=base.device).repeat(k)
    return metric(out, examples).double().reshape(k, n).mean(dim=1).cpu()


def _hold(value: Tensor, k: int) -> Any:
    def hold(act: Tensor, *, hook: Any) -> Tensor:
        return repeat_rows(value.to(act.device, act.dtype), k)

    return hold

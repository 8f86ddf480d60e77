"""`mechscope patch CHECKPOINT`: activation patching (and its attribution estimate) over layers x cells."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import Choice, FiguresOpt, FormatOpt, OutputOpt, output_of
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.data import DataBundle
from mechscope.errors import DataError
from mechscope.patching.activation import Direction
from mechscope.patching.cells import CellKind, default_layers
from mechscope.patching.metrics import MetricName
from mechscope.patching import (
    Pairing,
    PatchingResult,
    activation_patching,
    attribution_patching,
    compare,
    default_pairing,
    logit_diff,
    loss,
    modular_pairing,
    probability,
)

EXAMPLES = (
    "Examples:\n\n  mechscope patch runs/grokking-transformer-p59-r1\n\n"
    "  mechscope patch runs/grokking-transformer-p59-r1 --clean 3,5 --corrupt 3,9 --format json\n\n"
    "  mechscope patch runs/grokking-transformer-p59-r1 --along head --method both --out figures\n\n"
    "  mechscope patch --model net.py:make --data npz:data.npz --layer block1 --along unit --clean 0 --corrupt 7"
)


class MetricChoice(Choice, literal=MetricName):
    """What a patched run is scored by."""


class AlongChoice(Choice, literal=CellKind):
    """Which axis of each layer holds the cells."""


class DirectionChoice(Choice, literal=Direction):
    """Clean into corrupt (denoise) or corrupt into clean (noise)."""


class MethodChoice(str, Enum):
    """Exact patching, its attribution estimate, or both side by side."""

    exact = "exact"
    attribution = "attribution"
    both = "both"


@model_command
def patch(
    source: ModelSource,
    clean: Annotated[list[str] | None, typer.Option(
        help="A clean input: 'a,b' for a modular model, else the index of a held-out example. Repeatable.")] = None,
    corrupt: Annotated[list[str] | None, typer.Option(
        help="Its corrupt partner, same form (default: (a, b+1 mod p), or the next example of another class).")] = None,
    metric: Annotated[MetricChoice, typer.Option(help="Logit difference clean-corrupt answer, prob or loss.")] = (
        MetricChoice("logit-diff")),
    layer: Annotated[list[str] | None, typer.Option(
        help="Layer to patch (repeatable); default: the residual stream of every block, else the default layer.")]
    = None,
    along: Annotated[AlongChoice, typer.Option(help="Cells: sequence positions, attention heads or units.")] = (
        AlongChoice("pos")),
    direction: Annotated[DirectionChoice, typer.Option(help="denoise: clean into corrupt; noise: the reverse.")] = (
        DirectionChoice("denoise")),
    method: Annotated[MethodChoice, typer.Option(help="exact, attribution (one backward pass) or both.")] = (
        MethodChoice.exact),
    n: Annotated[int, typer.Option(min=1, max=4096, help="Examples of the default pairing.")] = 16,
    output: OutputOpt = None,
    out: FiguresOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Which layer, position, head or unit carries the answer: activation and attribution patching."""
    ckpt = source.load()
    model = ckpt.model
    pairing = _pairing(ckpt.data() if ckpt.data_spec is not None or ckpt.loaded_data is not None else None,
                       clean or [], corrupt or [], n)
    scorer = {"logit-diff": pairing.metric, "prob": probability(pairing.answer), "loss": loss(pairing.answer)}[
        metric.value]
    layers = layer or default_layers(model, along.value)
    kwargs: dict[str, Any] = {"along": along.value, "direction": direction.value, "output": output_of(output)}
    exact = None if method is MethodChoice.attribution else activation_patching(
        model, pairing.clean, pairing.corrupt, layers, scorer, **kwargs)
    approx = None if method is MethodChoice.exact else attribution_patching(
        model, pairing.clean, pairing.corrupt, layers, scorer, **kwargs)
    payload = patch_payload(exact if exact is not None else approx)  # type: ignore[arg-type]  # one always runs
    if exact is not None and approx is not None:
        comparison = compare(exact, approx)
        payload["attribution"] = {"values": _rows(approx), "max_error": comparison.max_error,
                                  "mean_error": comparison.mean_error}
    if out is not None:
        payload["figures"] = [str(p) for p in _figures(exact, approx, out)]
    emit(payload, fmt, _text(payload))


def patch_payload(result: PatchingResult) -> dict[str, Any]:
    """The JSON of a patching result: layers, cells under the name of what they are, values, metric."""
    word = {"pos": "positions", "head": "heads", "unit": "units"}.get(str(result.along), "cells")
    return {
        "layers": result.layers,
        word: list(range(max(result.n_cells))),
        "values": _rows(result),
        "metric": result.metric,
        "metric_values": [[None if v != v else v for v in row] for row in result.metric_values.tolist()],
        "clean_metric": result.clean_metric,
        "corrupt_metric": result.corrupt_metric,
        "direction": result.direction,
        "method": result.method,
    }


def _rows(result: PatchingResult) -> list[list[float | None]]:
    return [[None if v != v else round(v, 6) for v in row] for row in result.values.tolist()]


def _pairing(data: DataBundle | None, clean: list[str], corrupt: list[str], n: int) -> Pairing:
    if data is None:
        raise CLIError("patching needs inputs: give --data (or a checkpoint that records its data).")
    modular = "modulus" in data.extras and data.x_test.dim() == 2 and data.x_test.shape[1] == 2
    if not clean:
        if corrupt:
            raise CLIError("--corrupt needs --clean.")
        return default_pairing(data, n)
    if modular:
        p = int(data.extras["modulus"])
        try:
            return modular_pairing(p, torch.tensor([_pair(v) for v in clean]),
                                   torch.tensor([_pair(v) for v in corrupt]) if corrupt else None)
        except DataError as err:  # the pairs came from the command line: a bad argument
            raise CLIError(str(err)) from err
    if len(corrupt) != len(clean):
        raise CLIError(f"give one --corrupt per --clean; got {len(clean)} and {len(corrupt)}.")
    clean_i, corrupt_i = [_index(v, data) for v in clean], [_index(v, data) for v in corrupt]
    answer, wrong = data.y_test[clean_i].long(), data.y_test[corrupt_i].long()
    return Pairing(data.x_test[clean_i], data.x_test[corrupt_i], answer, wrong, logit_diff(answer, wrong))


def _pair(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise CLIError(f"a modular input is 'a,b' (two integers), got {text!r}; e.g. --clean 3,5.")
    return int(parts[0]), int(parts[1])


def _index(text: str, data: DataBundle) -> int:
    if not text.strip().isdigit() or int(text) >= data.x_test.shape[0]:
        raise CLIError(f"--clean/--corrupt take held-out example indices 0..{data.x_test.shape[0] - 1}, got {text!r}.")
    return int(text)


def _figures(exact: PatchingResult | None, approx: PatchingResult | None, out: Path) -> list[Path]:
    from mechscope.plots import save_figure
    from mechscope.plots.patching import plot_patching, plot_patching_comparison

    paths = []
    for result in (exact, approx):
        if result is not None:
            paths.append(save_figure(plot_patching(result), out / f"patching-{result.method}.png"))
    if exact is not None and approx is not None:
        paths.append(save_figure(plot_patching_comparison(compare(exact, approx)), out / "patching-comparison.png"))
    return paths


def _text(payload: dict[str, Any]) -> str:
    word = next(k for k in ("positions", "heads", "units", "cells") if k in payload)
    lines = [f"{payload['method']} patching ({payload['direction']}), metric {payload['metric']}: clean "
             f"{payload['clean_metric']:.4g}, corrupt {payload['corrupt_metric']:.4g}",
             f"recovered fraction per {word[:-1]}:"]
    width = max(len(name) for name in payload["layers"])
    for name, row in zip(payload["layers"], payload["values"], strict=True):
        lines.append(f"  {name:<{width}}  " + " ".join("   -  " if v is None else f"{v:6.3f}" for v in row))
    if "attribution" in payload:
        a = payload["attribution"]
        lines.append(f"attribution estimate: max error {a['max_error']:.3g}, mean error {a['mean_error']:.3g}")
    lines += [f"wrote {p}" for p in payload.get("figures", [])]
    return "\n".join(lines)

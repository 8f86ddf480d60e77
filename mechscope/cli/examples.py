"""`mechscope units examples CHECKPOINT --layer NAME`: top-k and bottom-k dataset examples of every unit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from torch import Tensor

from mechscope.capture import get_layer
from mechscope.circuits import dataset_examples, polysemanticity
from mechscope.circuits.examples import LayerExamples, Reduce
from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import (
    Choice,
    DataPartChoice,
    FiguresOpt,
    CacheOpt,
    FormatOpt,
    NoCacheOpt,
    RayAddressOpt,
    WorkersOpt,
    split_of,
    task_cache,
)
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.limits import MAX_WIDTH
from mechscope.data import DataBundle
from mechscope.engine import open_engine
from mechscope.errors import LayerNameError
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope units examples runs/digit-cnn --layer relu3\n\n"
    "  mechscope units examples runs/digit-cnn --layer relu1 --k 16 --out figs/examples\n\n"
    "  mechscope units examples runs/digit-cnn --layer fc1 --split test --format json\n\n"
    "  mechscope units examples runs/digit-cnn --layer relu3 --workers 2   # shards on a local Ray runtime"
)

_PAGE = 16  # units per figure


class ReduceChoice(Choice, literal=Reduce):
    """How a conv channel scores an input."""


@model_command
def examples(
    source: ModelSource,
    layer: Annotated[
        str, typer.Option("--layer", help="Layer whose channels/neurons to rank (see `mechscope layers`).")
    ],
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_WIDTH, help="Examples kept per unit, at each end.")] = 9,
    split: Annotated[
        DataPartChoice, typer.Option("--split", help="Inputs searched: all (train + test), train or test.")
    ] = DataPartChoice("all"),
    reduce: Annotated[
        ReduceChoice, typer.Option("--reduce", help="Conv channels: score an input by its max or mean activation.")
    ] = ReduceChoice("max"),
    min_classes: Annotated[
        int,
        typer.Option("--min-classes", min=1, max=MAX_WIDTH,
                     help="Flag a unit polysemantic when its top-k need this many classes."),
    ] = 3,
    workers: WorkersOpt = 0,
    ray_address: RayAddressOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    out: FiguresOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Find each unit's top-k and bottom-k dataset examples in one streaming pass, with polysemanticity."""
    ckpt = source.load()
    try:
        get_layer(ckpt.model, layer)
    except LayerNameError as err:
        raise CLIError(f"--layer: {err}") from None
    tasks = task_cache(cache, no_cache, workers, ray_address)
    bundle = ckpt.data()
    inputs, labels = split_of(bundle, split)
    with open_engine(workers, ray_address) as engine:  # shards of the data as tasks; merged exactly
        found = dataset_examples(ckpt.model, inputs, layer, k=k, reduce=reduce.value, engine=engine,
                                 cache=tasks)[layer]
    result: dict[str, Any] = {"checkpoint": source.label, "split": split.value, **to_json(found)}
    poly = None
    if bundle.task == "classification":
        poly = polysemanticity(found, labels, min_classes=min_classes, n_classes=bundle.n_classes,
                               class_names=bundle.class_names)
        result["polysemanticity"] = to_json(poly)
    if out is not None:
        result["figures"] = [str(p) for p in _figures(found, poly, inputs, labels, out)]
    emit(result, fmt, _text(found, labels if bundle.task == "classification" else None, result))


def _figures(found: LayerExamples, poly: Any, inputs: Tensor, labels: Tensor, out: Path) -> list[Path]:
    from mechscope.plots import save_figure
    from mechscope.plots.circuits import plot_dataset_examples, plot_polysemanticity

    has_labels = poly is not None
    written = []
    for first in range(0, found.n_units, _PAGE):
        units = list(range(first, min(first + _PAGE, found.n_units)))
        tag = f"{found.layer}_units{units[0]}-{units[-1]}"
        for which in ("top", "bottom"):
            figure = plot_dataset_examples(found, inputs, labels=labels if has_labels else None, which=which,
                                           units=units)
            written.append(save_figure(figure, out / f"examples_{tag}_{which}.png"))
        if found.receptive_field is not None:
            figure = plot_dataset_examples(found, inputs, labels=labels if has_labels else None, units=units,
                                           crops=True)
            written.append(save_figure(figure, out / f"examples_{tag}_crops.png"))
    if poly is not None:
        written.append(save_figure(plot_polysemanticity(poly), out / f"polysemanticity_{found.layer}.png"))
    return written


def _text(found: LayerExamples, labels: Tensor | None, result: dict[str, Any]) -> str:
    field = found.receptive_field
    where = "" if field is None else f", receptive field {'x'.join(str(s) for s in field.size)} px"
    lines = [f"{found.layer}: {found.n_units} units, top/bottom {found.k} of {found.n_inputs} inputs "
             f"(score: {found.reduce} over positions{where})"]
    poly = result.get("polysemanticity")
    by_unit = {entry["unit"]: entry for entry in poly["units"]} if poly else {}
    coverage = poly["coverage"] if poly else 0.0
    for u in range(found.n_units):
        top = found.top.indices[u].tolist()
        shown = ", ".join(
            f"#{i}" + (f" y={int(labels[i])}" if labels is not None else "") + f" {v:.3g}"
            for i, v in zip(top[:5], found.top.values[u].tolist()[:5])
        )
        line = f"  unit {u:>3}: {shown}{' ...' if found.k > 5 else ''}"
        entry = by_unit.get(u)
        if entry is not None:
            flag = " dead" if entry["is_dead"] else (" POLYSEMANTIC" if entry["is_polysemantic"] else "")
            line += f" | H={entry['entropy_bits']:.2f} bits, {entry['n_covering']} classes cover {coverage:.0%}{flag}"
        lines.append(line)
    if poly:
        lines.append(f"polysemantic units: {poly['n_polysemantic']} of {found.n_units} (dead: {poly['n_dead']})")
    for path in result.get("figures", []):
        lines.append(f"wrote {path}")
    return "\n".join(lines)

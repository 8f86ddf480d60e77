"""`mechscope report build CHECKPOINT --out DIR`: the browsable report of a model."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Annotated

import typer

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import (
    FormatOpt,
    OutDirOpt,
    OutputOpt,
    QuickOpt,
    CacheOpt,
    NoCacheOpt,
    RayAddressOpt,
    WorkersOpt,
    checked_out,
    output_of,
    task_cache,
)
from mechscope.cli._output import OutputFormat, emit
from mechscope.engine import open_engine
from mechscope.errors import MechscopeError
from mechscope.limits import MAX_WIDTH
from mechscope.report import ReportConfig, build_report
from mechscope.report.build import REPORT_FILE, check_report_out

EXAMPLES = (
    "Examples:\n\n  mechscope report build runs/digit-cnn --out report/digit-cnn\n\n"
    "  mechscope report build runs/modular-mlp-mod2 --out report/mod2 --quick --format json\n\n"
    "  mechscope report build runs/my-net --trust-code --device cuda --out report/my-net\n\n"
    "  mechscope report build runs/digit-cnn --workers 2 --out report/digit-cnn   # on a local Ray runtime\n\n"
    "  mechscope report build --model net.py:Net --weights net.safetensors --data images:photos --out report/net\n\n"
    "  Open report/digit-cnn/index.html in a browser (no server needed), or: mechscope report serve report/digit-cnn"
)


@model_command
def report(
    source: ModelSource,
    out: OutDirOpt,
    quick: QuickOpt = False,
    units: Annotated[
        int | None,
        typer.Option("--units", min=1, max=MAX_WIDTH,
                     help="Units per layer that get a page, the first ones (default: 128, 64 with --quick)."),
    ] = None,
    layer: Annotated[
        list[str] | None,
        typer.Option("--layer", metavar="NAME",
                     help="Layer whose units get pages (name, or name:k for the k-th call); repeat for several "
                          "(default: chosen by rule, see the README)."),
    ] = None,
    output: OutputOpt = None,
    workers: WorkersOpt = 0,
    ray_address: RayAddressOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Build a static HTML report of a model: overview, sections, one page per layer and per unit."""
    target = checked_out(out, check_report_out)
    tasks = task_cache(cache, no_cache, workers, ray_address)
    ckpt = source.load()
    title = None if ckpt.factory is None or source.options["checkpoint"] is not None else ckpt.factory.name
    with warnings.catch_warnings():  # failed sections are listed below, once
        warnings.filterwarnings("ignore", message="report section", category=RuntimeWarning)
        with open_engine(workers, ray_address) as engine:
            index = build_report(ckpt, target, config=_config(quick, units, output, layer), title=title, engine=engine,
                                 cache=tasks)
    summary = json.loads((index.parent / REPORT_FILE).read_text())
    shown = [s for s in summary["sections"] if s.get("page")]
    missing = [s for s in summary["sections"] if not s.get("page")]
    broken = [s for s in summary["sections"] if s.get("error")]
    lines = [f"report written: {index} ({summary['pages']} pages, {summary['seconds']['total']:.1f}s)"]
    lines += [f"  {s['title']}: {s['page']}" for s in shown]
    lines += [f"  {s['title']}: not shown ({s['reason']})" for s in missing]
    if tasks is not None:
        lines.append(f"tasks: {summary['tasks']['run']} run, {summary['tasks']['cached']} taken from {tasks.folder}")
    lines.append(f"open {index} in a browser")
    emit({"index": str(index), **summary}, fmt, "\n".join(lines))
    if broken and not shown:  # an overview of failures only: nothing could be built (exit 1)
        raise MechscopeError(f"no section of the report could be built ({len(broken)} failed); see {index}.")



def _config(quick: bool, units: int | None, output: str | None, layers: list[str] | None) -> ReportConfig:
    chosen = tuple(layers) if layers else None
    settings = (ReportConfig.quick(output=output_of(output), layers=chosen) if quick
                else ReportConfig(output=output_of(output), layers=chosen))
    return settings if units is None else dataclasses.replace(settings, max_units=units)

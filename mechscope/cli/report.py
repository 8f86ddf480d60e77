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
from mechscope.cli.errors import CLIError
from mechscope.engine import open_engine
from mechscope.errors import LimitError, MechscopeError
from mechscope.limits import MAX_WIDTH, format_size, parse_size
from mechscope.report import ReportConfig, build_report
from mechscope.report.build import REPORT_FILE, check_report_out

EXAMPLES = (
    "Examples:\n\n  mechscope report build runs/digit-cnn --out report/digit-cnn\n\n"
    "  mechscope report build runs/modular-mlp-mod2 --out report/mod2 --quick --format json\n\n"
    "  mechscope report build runs/my-net --trust-code --device cuda --out report/my-net\n\n"
    "  mechscope report build runs/digit-cnn --workers 2 --out report/digit-cnn   # on a local Ray runtime\n\n"
    "  mechscope report build runs/digit-cnn --units all --out report/digit-cnn   # a page for every unit\n\n"
    "  mechscope report build runs/digit-cnn --max-memory 2GB --out report/digit-cnn   # smaller batches\n\n"
    "  mechscope report build --model net.py:Net --weights net.safetensors --data images:photos --out report/net\n\n"
    "  Open report/digit-cnn/index.html in a browser (no server needed), or: mechscope report serve report/digit-cnn"
)


@model_command
def report(
    source: ModelSource,
    out: OutDirOpt,
    quick: QuickOpt = False,
    units: Annotated[
        str | None,
        typer.Option("--units", metavar="N|all",
                     help="Units per layer that get a page: the first N, or all (default: 128, 64 with --quick; "
                          "all with --workers or --ray-address, which spread the work)."),
    ] = None,
    layer: Annotated[
        list[str] | None,
        typer.Option("--layer", metavar="NAME",
                     help="Layer whose units get pages (name, or name:k for the k-th call); repeat for several "
                          "(default: chosen by rule, see the README)."),
    ] = None,
    output: OutputOpt = None,
    max_memory: Annotated[
        str | None,
        typer.Option("--max-memory", metavar="SIZE",
                     help="Most memory the activations of the per-unit work may take at once, e.g. 2GB or 512MB: "
                          "its batches are cut to fit, with the same results (default: no budget)."),
    ] = None,
    workers: WorkersOpt = 0,
    ray_address: RayAddressOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Build a static HTML report of a model: overview, sections, one page per layer and per unit."""
    max_units = report_units(units, workers=workers, ray_address=ray_address, quick=quick)
    budget = report_memory(max_memory)
    target = checked_out(out, check_report_out)
    tasks = task_cache(cache, no_cache, workers, ray_address)
    ckpt = source.load()
    title = None if ckpt.factory is None or source.options["checkpoint"] is not None else ckpt.factory.name
    with warnings.catch_warnings():  # failed sections are listed below, once
        warnings.filterwarnings("ignore", message="report section", category=RuntimeWarning)
        with open_engine(workers, ray_address) as engine:
            index = build_report(ckpt, target, config=_config(quick, max_units, output, layer, budget),
                                 title=title, engine=engine, cache=tasks)
    summary = json.loads((index.parent / REPORT_FILE).read_text())
    shown = [s for s in summary["sections"] if s.get("page")]
    missing = [s for s in summary["sections"] if not s.get("page")]
    broken = [s for s in summary["sections"] if s.get("error")]
    size = summary["site"]
    lines = [f"report written: {index} ({summary['pages']} pages; {size['files']:,} files, "
             f"{format_size(size['bytes'])}; {summary['seconds']['total']:.1f}s)"]
    lines += [f"  {s['title']}: {s['page']}" for s in shown]
    lines += [f"  {s['title']}: not shown ({s['reason']})" for s in missing]
    if tasks is not None:
        lines.append(f"tasks: {summary['tasks']['run']} run, {summary['tasks']['cached']} taken from {tasks.folder}")
    lines.append(f"open {index} in a browser")
    emit({"index": str(index), **summary}, fmt, "\n".join(lines))
    if broken and not shown:  # an overview of failures only: nothing could be built (exit 1)
        raise MechscopeError(f"no section of the report could be built ({len(broken)} failed); see {index}.")


def report_units(units: str | None, *, workers: int, ray_address: str | None, quick: bool) -> int | None:
    """The --units value as `ReportConfig.max_units`: a count, or None for every unit.

    Without --units: every unit when the work is spread (--workers N or --ray-address), else
    `ReportConfig`'s default (128; 64 with --quick).

    Raises:
        CLIError: `units` is neither `all` nor an integer from 1 to `MAX_WIDTH`.
    """
    if units is None:
        if workers > 0 or ray_address is not None:
            return None
        return (ReportConfig.quick() if quick else ReportConfig()).max_units
    text = units.strip()
    if text.lower() == "all":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and 1 <= int(text) <= MAX_WIDTH):
        raise CLIError(f"--units must be a positive integer up to {MAX_WIDTH:,} or 'all'; got {units!r}.")
    return int(text)


def report_memory(text: str | None) -> int | None:
    """The --max-memory value as `ReportConfig.max_memory`: bytes (powers of 1024), or None for no budget.

    Raises:
        CLIError: `text` is not a size (`2GB`, `512MB`, `1.5G`, a byte count) of at least one byte.
    """
    if text is None:
        return None
    try:
        n_bytes = parse_size(text)
    except LimitError:
        n_bytes = 0
    if n_bytes < 1:
        raise CLIError(f"--max-memory must be a memory size such as 2GB, 512MB or 1.5G; got {text!r}.")
    return n_bytes


def _config(quick: bool, max_units: int | None, output: str | None, layers: list[str] | None,
            max_memory: int | None) -> ReportConfig:
    chosen = tuple(layers) if layers else None
    settings = (ReportConfig.quick(output=output_of(output), layers=chosen) if quick
                else ReportConfig(output=output_of(output), layers=chosen))
    return dataclasses.replace(settings, max_units=max_units, max_memory=max_memory)

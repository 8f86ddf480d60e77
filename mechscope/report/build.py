"""Build the microscope report of one model: a static site of pages that open from disk.

`build_report` runs every analysis that applies to the model (units, activations by depth,
class circuits, attribution, probes, formula, Fourier spectrum), writes one page per
section, per layer and per unit, and an overview (`index.html`) that lists each section or
says why it does not apply. `report.json` holds the numbers behind the pages.

Example:
    >>> index = build_report("runs/digit-cnn", "report/digit-cnn", quick=True)
    >>> index.name
    'index.html'
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mechscope.atomic import check_output, writing_folder
from mechscope.capture import describe_output
from mechscope.data import DataBundle
from mechscope.errors import MechscopeError
from mechscope.report.config import ReportConfig
from mechscope.report.context import ReportContext, Source, make_context
from mechscope.report.section import Section, SectionBuilder, failed, skipped
from mechscope.report.sections.attribution import build_attribution
from mechscope.report.sections.circuits import build_circuits
from mechscope.report.sections.depth import build_depth
from mechscope.report.sections.formula import build_formula
from mechscope.report.sections.fourier import build_fourier
from mechscope.report.sections.overview import write_overview
from mechscope.report.sections.probes import build_probes
from mechscope.report.sections.units import build_units

__all__ = ["build_report", "is_report", "check_report_out", "BUILDERS", "REPORT_FILE", "REPORT_FORMAT"]

REPORT_FILE = "report.json"
REPORT_FORMAT = "mechscope-report"  # first entry of report.json: the marker of a report folder

BUILDERS: tuple[tuple[str, str, SectionBuilder], ...] = (
    ("depth", "Activations by depth", build_depth),
    ("units", "Layers and units", build_units),
    ("circuits", "Class circuits", build_circuits),
    ("attribution", "Attribution", build_attribution),
    ("probes", "Probes by layer", build_probes),
    ("formula", "Recovered formula", build_formula),
    ("fourier", "Fourier spectrum", build_fourier),
)
"""(key, title, builder) in build order: layer pages read the depth statistics, and the
circuit and probe pages link to unit pages."""

_SHOWN_ORDER = ("units", "depth", "circuits", "attribution", "probes", "formula", "fourier")


def build_report(
    source: Source,
    out_dir: str | os.PathLike[str],
    *,
    data: DataBundle | None = None,
    quick: bool = False,
    config: ReportConfig | None = None,
    title: str | None = None,
    home: tuple[str, str | os.PathLike[str]] | None = None,
    progress: bool = True,
) -> Path:
    """Analyse a model and write its report into `out_dir`; return the path of its index.html.

    Args:
        source: A checkpoint folder, a loaded Checkpoint, or any nn.Module.
        out_dir: Folder of the site. It must be new, empty, or hold an earlier report, which
            is replaced whole once the new one is complete (built beside it, then renamed).
        data: The model's data; default: rebuilt from the checkpoint's data spec. A plain
            module without data gets the sections that need none (and the reasons for the rest).
        quick: Use `ReportConfig.quick()` (fewer steps, images, seeds) unless `config` is given.
        config: Sizes of the analyses.
        title: Name of the model in the pages; default the checkpoint folder's name (or its
            parent's, for a folder called "checkpoint") or the model class.
        home: (text, path of an index page) that every breadcrumb starts from (the tour index).
        progress: Show progress bars on a terminal.

    Returns:
        Path of the written index.html.

    Raises:
        CheckpointError: `source` is a folder that holds no readable checkpoint.
        ConfigError: `source` is of an unsupported type.
        OutputError: `out_dir` holds something that is not a mechscope report (checked
            before any work), or the file system refused.
    """
    settings = config if config is not None else (ReportConfig.quick() if quick else ReportConfig())
    home_page = None if home is None else (home[0], Path(home[1]))
    out = check_report_out(out_dir)
    with writing_folder(out, owned=is_report, what="a mechscope report") as tmp:
        index = _build(source, tmp, data=data, settings=settings, title=title, home=home_page, progress=progress)
    return out / index.name


def _build(source: Source, tmp: Path, *, data: DataBundle | None, settings: ReportConfig, title: str | None,
           home: tuple[str, Path] | None, progress: bool) -> Path:
    ctx = make_context(source, tmp, data=data, settings=settings, home=home, progress=progress)
    if title is not None:
        ctx.name = title
    elif ctx.source is not None and ctx.name == "checkpoint":
        ctx.name = Path(ctx.source).resolve().parent.name
    ctx.site.title = ctx.name
    ctx.site.write_style()
    start = time.perf_counter()
    built: dict[str, Section] = {}
    timings: dict[str, float] = {}
    bar = tqdm(BUILDERS, desc=f"report {ctx.name}", unit="section", leave=False, disable=None if progress else True)
    for key, section_title, builder in bar:
        bar.set_postfix_str(key)
        began = time.perf_counter()
        built[key] = _run(ctx, key, section_title, builder)
        timings[key] = round(time.perf_counter() - began, 3)
    sections = [built[key] for key in _SHOWN_ORDER if key in built]
    index = write_overview(ctx, sections)
    summary = {
        "format": REPORT_FORMAT,
        "name": ctx.name,
        "model_class": ctx.model_class,
        "checkpoint": ctx.source,
        "metrics": ctx.metrics,
        "data": None if ctx.data is None else ctx.data.spec,
        "settings": {**settings.__dict__, "output": describe_output(settings.output)},
        "sections": [s.to_dict() for s in sections],
        "seconds": {**timings, "total": round(time.perf_counter() - start, 3)},
        "pages": len(ctx.site.pages),
    }
    ctx.site.write_text(REPORT_FILE, json.dumps(_jsonable(summary), indent=1, allow_nan=False))  # the marker
    ctx.site.share()
    return index


def is_report(path: Path) -> bool:
    """True when the folder `path` holds a mechscope report (by its report.json marker)."""
    meta = Path(path) / REPORT_FILE
    try:
        if not meta.is_file():
            return False
        with open(meta, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return f'"format": "{REPORT_FORMAT}"'.encode() in head


def check_report_out(out_dir: str | os.PathLike[str]) -> Path:
    """Check before any work that a report may be written at `out_dir`; return it resolved.

    Raises:
        OutputError: `out_dir` holds something that is not a mechscope report, or is unwritable.
    """
    return check_output(out_dir, owned=is_report, what="a mechscope report")


def _run(ctx: ReportContext, key: str, title: str, builder: SectionBuilder) -> Section:
    """Build one section; an analysis that refuses this model becomes a section that says why.

    Any other exception is recorded on the section ("failed: <ExceptionType: message>", shown
    on the overview and in report.json, and warned about), and the rest of the report is
    built. KeyboardInterrupt and SystemExit are not caught.
    """
    try:
        return builder(ctx)
    except MechscopeError as err:
        return skipped(key, title, f"the analysis failed on this model: {err}")
    except Exception as err:  # one broken analysis must not cost the whole report
        section = failed(key, title, err)
        warnings.warn(f"report section {key!r} of {ctx.name} {section.reason}", RuntimeWarning, stacklevel=2)
        return section


def _jsonable(value: Any) -> Any:
    """Plain JSON: tensors to lists, non-finite floats to None, unknown objects to strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


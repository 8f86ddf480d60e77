"""Build the microscope report of one model: a static site of pages that open from disk.

`build_report` runs every section that applies to the model (units, activations by depth,
class circuits, attribution, probes, formula, Fourier spectrum: `SECTIONS`), writes one page
per section, per layer and per unit, and an overview (`index.html`) that lists each section or
says why it does not apply. `report.json` holds the numbers behind the pages.

Sections run in the order of their declared `needs` (`section_order`); the overview shows them
in the order given. A section that does not apply, or whose analysis refuses the model, is
skipped with the reason; one that raises anything else is marked failed and the rest are
built. A section whose dependency was skipped or failed still runs and receives None for it
(`Deps.get`), as units without the depth statistics simply leave them off the layer pages.

Example:
    >>> index = build_report("runs/digit-cnn", "report/digit-cnn", quick=True)
    >>> index.name
    'index.html'
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mechscope.atomic import check_output, writing_folder
from mechscope.capture.outputs import describe_output
from mechscope.data import DataBundle
from mechscope.cache import TaskCache
from mechscope.engine import Engine
from mechscope.errors import ConfigError, MechscopeError
from mechscope.report.config import ReportConfig
from mechscope.report.context import ReportContext, Source, make_context
from mechscope.report.section import Deps, NotApplicable, ReportSection, Section, failed, skipped
from mechscope.report.sections import SECTIONS
from mechscope.report.sections.overview import write_overview
from mechscope.report.sections.units import UnitsResult
from mechscope.report.units import memory_plan
from mechscope.serialize import to_json

__all__ = ["build_report", "section_order", "is_report", "check_report_out", "REPORT_FILE", "REPORT_FORMAT"]

REPORT_FILE = "report.json"
REPORT_FORMAT = "mechscope-report"  # first entry of report.json: the marker of a report folder

SectionClass = type[ReportSection[Any]]


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
    sections: Sequence[SectionClass] = SECTIONS,
    engine: Engine | None = None,
    cache: TaskCache | None = None,
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
        sections: The sections, in the order the overview shows them (default `SECTIONS`);
            they run in the order of their `needs`.
        engine: Where independent tasks run (`mechscope.engine.open_engine`): the unit pages'
            dataset-example search, renders and ablations. The report is the same either way.
        cache: Keep every finished task (`mechscope.cache.TaskCache`), so a rerun after an
            interruption resumes where it stopped and computes no finished task again.

    Returns:
        Path of the written index.html.

    Raises:
        CheckpointError: `source` is a folder that holds no readable checkpoint.
        ConfigError: `source` is of an unsupported type, `sections` is not a valid set of
            sections (checked before any work: see `section_order`), or `config.max_memory`
            is below what one input of the model needs (`mechscope.report.units.memory_plan`).
        OutputError: `out_dir` holds something that is not a mechscope report (checked
            before any work), or the file system refused.
    """
    settings = config if config is not None else (ReportConfig.quick() if quick else ReportConfig())
    home_page = None if home is None else (home[0], Path(home[1]))
    order = section_order(sections)
    out = check_report_out(out_dir)
    with writing_folder(out, owned=is_report, what="a mechscope report") as tmp:
        index = _build(source, tmp, data=data, settings=settings, title=title, home=home_page, progress=progress,
                       shown=tuple(sections), order=order, engine=engine, cache=cache)
    return out / index.name


def section_order(sections: Sequence[SectionClass]) -> tuple[SectionClass, ...]:
    """The order to run `sections` in: each after the sections it `needs`, otherwise as given.

    A need is met by the section that is, or subclasses, the needed class.

    Raises:
        ConfigError: an entry is not a ReportSection subclass with a key and a title, two share
            a key, a section needs one that is not among `sections`, or needs form a cycle.
    """
    _check_sections(sections)
    order: list[SectionClass] = []
    pending = list(sections)
    while pending:
        ready = next((s for s in pending if all(_provider(need, order) is not None for need in s.needs)), None)
        if ready is None:
            raise ConfigError("report sections that need each other (a cycle in their `needs`): "
                              + ", ".join(repr(s.key) for s in pending) + ".")
        order.append(ready)
        pending.remove(ready)
    return tuple(order)


def _build(source: Source, tmp: Path, *, data: DataBundle | None, settings: ReportConfig, title: str | None,
           home: tuple[str, Path] | None, progress: bool, shown: tuple[SectionClass, ...],
           order: tuple[SectionClass, ...], engine: Engine | None, cache: TaskCache | None) -> Path:
    ctx = make_context(source, tmp, data=data, settings=settings, home=home, progress=progress)
    memory_plan(ctx)  # a memory budget too small for one input fails here, before any analysis
    if engine is not None:
        ctx.engine = engine
    ctx.cache = cache
    if title is not None:
        ctx.name = title
    elif ctx.source is not None and ctx.name == "checkpoint":
        ctx.name = Path(ctx.source).resolve().parent.name
    ctx.site.title = ctx.name
    ctx.site.write_style()
    start = time.perf_counter()
    built: dict[SectionClass, Section] = {}
    results: dict[SectionClass, object] = {}  # results of the sections that built
    timings: dict[str, float] = {}
    bar = tqdm(order, desc=f"report {ctx.name}", unit="section", leave=False, disable=None if progress else True)
    for cls in bar:
        bar.set_postfix_str(cls.key)
        began = time.perf_counter()
        built[cls], result = _run(ctx, cls, _deps(cls, order, results))
        if result is not None:
            results[cls] = result
        timings[cls.key] = round(time.perf_counter() - began, 3)
    sections = [built[cls] for cls in shown]
    units = next((r for r in results.values() if isinstance(r, UnitsResult)), None)
    index = write_overview(ctx, sections, () if units is None else units.layers)
    files, size = ctx.site.usage()  # every file but report.json, which is written next and holds this count
    summary = {
        "format": REPORT_FORMAT,
        "name": ctx.name,
        "model_class": ctx.model_class,
        "checkpoint": ctx.source,
        "metrics": ctx.metrics,
        "data": None if ctx.data is None else ctx.data.spec,
        "settings": {**settings.__dict__, "output": describe_output(settings.output)},
        "sections": sections,
        "seconds": {**timings, "total": round(time.perf_counter() - start, 3)},
        "pages": len(ctx.site.pages),
        "tasks": None if cache is None else {"cached": cache.hits, "run": cache.misses},
        "site": {"files": files, "bytes": size},
    }
    ctx.site.write_text(REPORT_FILE, json.dumps(to_json(summary), indent=1, allow_nan=False))  # the marker
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


def _run(ctx: ReportContext, cls: SectionClass, deps: Deps) -> tuple[Section, object | None]:
    """Build one section: its page and result, or the reason it has none.

    A section that does not apply, or whose analysis refuses this model (a MechscopeError),
    becomes a section that says why. Any other exception is recorded on the section ("failed:
    <ExceptionType: message>", shown on the overview and in report.json, and warned about),
    and the rest of the report is built. KeyboardInterrupt and SystemExit are not caught.
    """
    section = cls()
    try:
        reason = section.applies(ctx)
        if reason is not None:
            return skipped(cls.key, cls.title, reason), None
        result = section.analyse(ctx, deps)
        data = to_json(result)
        if not isinstance(data, dict):
            raise TypeError(f"the result of {cls.__name__} must have a JSON object form (a dataclass, a mapping or "
                            f"__json__ returning a dict); got {type(data).__name__}.")
        shown = section.render(ctx, result)
    except NotApplicable as err:
        return skipped(cls.key, cls.title, str(err)), None
    except MechscopeError as err:
        return skipped(cls.key, cls.title, f"the analysis failed on this model: {err}"), None
    except Exception as err:  # one broken analysis must not cost the whole report
        broken = failed(cls.key, cls.title, err)
        warnings.warn(f"report section {cls.key!r} of {ctx.name} {broken.reason}", RuntimeWarning, stacklevel=2)
        return broken, None
    return Section(cls.key, cls.title, shown.page, summary=shown.summary, data=data), result


def _deps(cls: SectionClass, order: Sequence[SectionClass], results: dict[SectionClass, object]) -> Deps:
    """What `cls` needs: each needed section's result, None for one that was skipped or failed."""
    providers = {need: _provider(need, order) for need in cls.needs}
    return Deps(cls, {need: None if p is None else results.get(p) for need, p in providers.items()})


def _provider(need: SectionClass, sections: Sequence[SectionClass]) -> SectionClass | None:
    """The first of `sections` that is `need` or a subclass of it."""
    return next((s for s in sections if issubclass(s, need)), None)


def _check_sections(sections: Sequence[SectionClass]) -> None:
    """Refuse entries that are not sections, duplicate keys and needs that no entry meets."""
    keys: dict[str, str] = {}
    for s in sections:
        if not (isinstance(s, type) and issubclass(s, ReportSection)):
            raise ConfigError(f"report sections are ReportSection subclasses; got {s!r}.")
        key, title = getattr(s, "key", None), getattr(s, "title", None)
        if not (isinstance(key, str) and key and isinstance(title, str) and title):
            raise ConfigError(f"report section {s.__name__} must set `key` and `title` (non-empty strings).")
        if key in keys:
            raise ConfigError(f"report sections {keys[key]} and {s.__name__} share the key {key!r}.")
        keys[key] = s.__name__
    for s in sections:
        for need in s.needs:
            if _provider(need, sections) is None:
                raise ConfigError(f"report section {s.key!r} needs {need.__name__}, which is not among the sections "
                                  f"({', '.join(keys)}).")


section_order(SECTIONS)  # a cycle or a missing need among the built-in sections fails on import

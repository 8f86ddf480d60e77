"""Sweeps: a grid of trainings and probes of the modular MLP, each grid point an independent task.

`sweep_modular` takes every (modulus, seed) of a `SweepGrid`, trains seed 000's modular MLP
there and probes it the way `reproduce_article` does, and returns one flat `SweepRow` of
numbers per point, in grid order: the model's held-out accuracy, the probe's held-out accuracy
per head (`a`, `b`, `output`) and on all heads, and the probe's controls (majority baseline,
control task, selectivity, untrained copy). The points run as tasks on an engine
(`mechscope.engine`): in this process, or on a Ray runtime with `open_engine(workers=N)` or a
cluster. Each point seeds its own data, weights, training and probes from its seed and runs on
one thread, so the rows do not depend on the engine, on the number of workers or on the order
in which points ran. `SweepResult.write` puts the table (`sweep.csv`, `sweep.json`) and one
figure (`sweep.png`) into a folder.

One point is the article's setup: 10,000 sampled training pairs and 10,000 held-out pairs,
full-batch training to 100% training accuracy, one ConvProbe seed on the held-out pairs (task,
control task and untrained copy). Measured in CPU seconds on one thread of a shared 2-core CPU
(seeds 0-7, median and range): mod 2 0.24 (0.19-0.38), mod 3 0.76 (0.41-2.9), mod 5 1.4
(0.95-2.0); the probe's fits take most of it. The default grid, 20 seeds x moduli 2, 3 and 5,
took 59 CPU seconds in one process.

Example:
    >>> result = sweep_modular(SweepGrid(moduli=(2, 3), seeds=range(3)))
    >>> [(s.modulus, s.mean["probe_all_heads"]) for s in result.summary]
    [(2, 1.0), (3, 1.0)]
    >>> result.write("sweeps/mod")                  # sweep.csv, sweep.json, sweep.png
    >>> with open_engine(workers=2) as engine:      # the same rows, from two Ray workers
    ...     same = sweep_modular(SweepGrid(moduli=(2, 3), seeds=range(3)), engine=engine)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from tqdm.auto import tqdm

from mechscope.atomic import check_output, writing_folder
from mechscope.data import modular_data
from mechscope.data.modular import Operation
from mechscope.cache import TaskCache
from mechscope.engine import Engine, LocalEngine
from mechscope.errors import ConfigError
from mechscope.limits import MAX_DRAWS, MAX_MODULUS, MAX_SEED, check_limit
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded, train
from mechscope.probes import probe_modular_mlp
from mechscope.recipes.seed000_probes import article_hidden
from mechscope.serialize import to_json
from mechscope.devices import threads

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "SweepGrid",
    "SweepRow",
    "ModulusSummary",
    "SweepResult",
    "sweep_modular",
    "sweep_point",
    "is_sweep",
    "check_sweep_out",
    "SWEEP_FILES",
]

SWEEP_FILES = ("sweep.csv", "sweep.json", "sweep.png")
"""What `SweepResult.write` puts into its folder."""

_FORMAT = "mechscope-sweep"  # first key of sweep.json: the marker of a sweep folder
_HEADS = ("a", "b", "output")  # the label groups probe_modular_mlp decodes
_PLOTTED = {  # column -> label in the figure; the controls after the probe
    "test_accuracy": "model", "probe_a": "probe a", "probe_b": "probe b", "probe_output": "probe output",
    "probe_all_heads": "probe all heads", "baseline": "majority baseline", "control": "control task",
    "untrained": "untrained copy",
}
_CONTROLS = ("baseline", "control", "untrained")


@dataclass(frozen=True)
class SweepGrid:
    """The points of a modular-MLP sweep: every modulus with every seed, moduli outermost.

    Example:
        >>> SweepGrid(moduli=(2, 3), seeds=range(2)).points
        ((2, 0), (2, 1), (3, 0), (3, 1))
    """

    moduli: Sequence[int] = (2, 3, 5)  # m >= 2 of (a op b) mod m; the model is article_hidden(m) units wide
    seeds: Sequence[int] = tuple(range(20))  # per point: seed of its data, weights, training and probe
    n_pairs: int = 10_000  # sampled training pairs, and as many held-out pairs (the article: 10,000)
    operation: Operation = "+"  # "+", "-" or "*"

    def __post_init__(self) -> None:
        moduli = _distinct_ints("moduli", self.moduli, minimum=2, maximum=MAX_MODULUS, example="(2, 3, 5)")
        object.__setattr__(self, "moduli", moduli)
        object.__setattr__(self, "seeds", _distinct_ints("seeds", self.seeds, minimum=0, maximum=MAX_SEED,
                                                         example="range(20)"))
        if isinstance(self.n_pairs, bool) or not isinstance(self.n_pairs, int) or self.n_pairs < 10:
            raise ConfigError(f"n_pairs must be an integer >= 10, got {self.n_pairs!r}; the article uses 10,000.")
        if self.operation not in get_args(Operation):
            raise ConfigError(f"operation must be one of {get_args(Operation)!r}, got {self.operation!r}.")
        check_limit("the number of grid points", len(self.points), MAX_DRAWS)

    @property
    def points(self) -> tuple[tuple[int, int], ...]:
        """(modulus, seed) of every point, in grid order."""
        return tuple((m, s) for m in self.moduli for s in self.seeds)


@dataclass(frozen=True)
class SweepRow:
    """The numbers of one grid point; accuracies are on held-out pairs.

    The probe fields are one seed's (the point's) scores; "all heads" counts an example right
    when `a`, `b` and `output` all are.
    """

    modulus: int  # m
    seed: int  # seed of the data, the initial weights, training and the probe
    hidden: int  # units per hidden layer (article_hidden(m))
    epochs: int  # full-batch epochs until 100% training accuracy (or the cap)
    test_accuracy: float  # the model on its held-out pairs
    probe_a: float  # probe head a
    probe_b: float  # probe head b
    probe_output: float  # probe head output (the class the model predicts)
    probe_all_heads: float  # all three heads right
    baseline: float  # majority-class baseline, all heads
    control: float  # the same probe on the control task (random labels per pair), all heads
    selectivity: float  # probe_all_heads - control
    untrained: float  # the same probe on an untrained copy of the model, all heads


@dataclass(frozen=True)
class ModulusSummary:
    """Mean and sample standard deviation over the seeds of one modulus, per column of `SweepRow`."""

    modulus: int
    hidden: int
    n_seeds: int
    mean: dict[str, float]
    std: dict[str, float]  # 0 for one seed


@dataclass(frozen=True)
class SweepResult:
    """The rows of a sweep in grid order, with a summary per modulus.

    JSON (`mechscope.serialize.to_json`): the grid, the rows and the summary.
    """

    json_extra: ClassVar[tuple[str, ...]] = ("summary",)

    grid: SweepGrid
    rows: tuple[SweepRow, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the columns of the table, in order."""
        return tuple(f.name for f in dataclasses.fields(SweepRow))

    @property
    def summary(self) -> tuple[ModulusSummary, ...]:
        """One ModulusSummary per modulus, in grid order."""
        out = []
        for modulus in self.grid.moduli:
            rows = [r for r in self.rows if r.modulus == modulus]
            if not rows:
                continue
            names = self.columns[3:]  # the measured columns (after modulus, seed, hidden)
            values = {name: [float(getattr(r, name)) for r in rows] for name in names}
            out.append(ModulusSummary(modulus, rows[0].hidden, len(rows),
                                      {k: statistics.fmean(v) for k, v in values.items()},
                                      {k: _std(v) for k, v in values.items()}))
        return tuple(out)

    def records(self) -> list[dict[str, float]]:
        """The rows as dicts, column -> value."""
        return [dataclasses.asdict(row) for row in self.rows]

    def to_csv(self) -> str:
        """The table as CSV text: a header of the column names, one line per point (floats in full)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([[repr(value) for value in dataclasses.astuple(row)] for row in self.rows])
        return buffer.getvalue()

    def format(self) -> str:
        """A text table: per modulus, the mean +/- std over seeds of the main columns."""
        shown = ("test_accuracy", "probe_a", "probe_b", "probe_output", "probe_all_heads", "control", "untrained")
        header = ["model", "probe a", "probe b", "probe output", "all heads", "control", "untrained"]
        lines = [f"{'mod':>4} {'seeds':>5} {'epochs':>7}  " + "  ".join(f"{h:>14}" for h in header)]
        for s in self.summary:
            cells = [f"{s.mean[k]:.3f} +/- {s.std[k]:.3f}" for k in shown]
            lead = f"{s.modulus:>4} {s.n_seeds:>5} {s.mean['epochs']:>7.1f}  "
            lines.append(lead + "  ".join(f"{c:>14}" for c in cells))
        return "\n".join(lines)

    def figure(self) -> Figure:
        """The spread over seeds per modulus: the model, each probe head, all heads and the controls (`plot_sweep`)."""
        from mechscope.plots.sweep import plot_sweep  # matplotlib loads only when a figure is drawn

        title = (f"Modular MLP sweep: held-out accuracy over {len(self.grid.seeds)} seeds per modulus "
                 f"(n_pairs={self.grid.n_pairs})")
        return plot_sweep(self.records(), _PLOTTED, by="modulus", muted=_CONTROLS, title=title)

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write `sweep.csv`, `sweep.json` and `sweep.png` into `out_dir`, atomically; return their paths.

        `out_dir` is created, or replaced whole when it holds an earlier sweep; the same rows
        give byte-identical CSV and JSON.

        Raises:
            OutputError: `out_dir` holds something that is not a mechscope sweep, or is unwritable.
        """
        from mechscope.plots import save_figure  # matplotlib loads only when a sweep is written

        target = check_sweep_out(out_dir)
        csv_name, json_name, png_name = SWEEP_FILES
        with writing_folder(target, owned=is_sweep, what="a mechscope sweep") as tmp:
            tmp.chmod(0o755)  # a temporary folder is owner-only; the sweep is for anyone who may read its parent
            (tmp / json_name).write_text(json.dumps({"format": _FORMAT, **to_json(self)}, indent=1, allow_nan=False)
                                         + "\n")
            (tmp / csv_name).write_text(self.to_csv())
            save_figure(self.figure(), tmp / png_name)
        return [target / name for name in SWEEP_FILES]


def sweep_modular(grid: SweepGrid | None = None, *, engine: Engine | None = None, cache: TaskCache | None = None,
                  progress: bool = False) -> SweepResult:
    """Train and probe the modular MLP at every point of `grid`, one task per point.

    Args:
        grid: The points; default `SweepGrid()` (20 seeds x moduli 2, 3 and 5, about a minute on one core).
        engine: Where the points run (`mechscope.engine.open_engine`); default this process.
        cache: Keep each finished point (`mechscope.cache.TaskCache`): a rerun of an interrupted
            sweep trains only the points that had not finished.
        progress: Show a progress bar over the points.

    Returns:
        SweepResult with one row per point, in grid order; the same rows from any engine.

    Raises:
        ConfigError: Ray cannot run the points (see RayEngine).
    """
    grid = SweepGrid() if grid is None else grid
    engine = LocalEngine() if engine is None else engine
    rows = engine.map(sweep_point, grid.points, shared=grid, cache=cache, desc="sweep" if progress else None)
    return SweepResult(grid, tuple(rows))


def sweep_point(grid: SweepGrid, point: tuple[int, int]) -> SweepRow:
    """Train and probe the model of one grid point (the task each point runs, on any worker).

    Args:
        grid: The sweep's settings (data size, operation).
        point: (modulus, seed).

    Returns:
        The point's SweepRow: the same for the same grid and point wherever it runs.
    """
    modulus, seed = point
    width = article_hidden(modulus)
    with threads(1):  # the same arithmetic on every worker, however many threads it was given
        data = modular_data(modulus, grid.operation, n_train=grid.n_pairs, n_test=grid.n_pairs, seed=seed)
        model = build_seeded(ModularMLP, ModularMLPConfig(modulus=modulus, hidden=width), seed)
        result = train(model, data, progress=False)
        model.eval()
        report = probe_modular_mlp(model, data, seeds=(seed,)).report
    untrained = report.untrained_accuracy
    return SweepRow(
        modulus=modulus, seed=seed, hidden=width, epochs=result.epochs_run,
        test_accuracy=result.metrics["test_accuracy"],
        probe_a=report.heads[_HEADS[0]], probe_b=report.heads[_HEADS[1]], probe_output=report.heads[_HEADS[2]],
        probe_all_heads=report.all_heads_accuracy, baseline=report.baseline_accuracy,
        control=report.control_accuracy, selectivity=report.selectivity,
        untrained=float("nan") if untrained is None else untrained,
    )


def is_sweep(path: Path) -> bool:
    """True when the folder `path` holds a mechscope sweep (by its sweep.json marker)."""
    try:
        with open(Path(path) / SWEEP_FILES[1], "rb") as handle:
            return f'"format": "{_FORMAT}"'.encode() in handle.read(4096)
    except OSError:
        return False


def check_sweep_out(out_dir: str | os.PathLike[str]) -> Path:
    """Check before any work that a sweep may be written at `out_dir`; return it resolved.

    Raises:
        OutputError: `out_dir` holds something that is not a mechscope sweep, or is unwritable.
    """
    return check_output(out_dir, owned=is_sweep, what="a mechscope sweep")


def _distinct_ints(name: str, values: Any, *, minimum: int, maximum: int, example: str) -> tuple[int, ...]:
    """`values` as a tuple of distinct integers in [minimum, maximum], or a ConfigError saying what is wrong."""
    try:
        found = tuple(values)
    except TypeError:
        raise ConfigError(f"{name} must be a sequence of integers, got {values!r}; e.g. {name}={example}.") from None
    bad = [v for v in found if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum]
    if not found or bad:
        what = f"got {bad[0]!r} in {found!r}" if bad else "got none"
        raise ConfigError(f"{name} must hold integers from {minimum} to {maximum}, {what}; e.g. {name}={example}.")
    if len(set(found)) != len(found):
        raise ConfigError(f"{name} must not repeat a value, got {found!r}.")
    return found


def _std(values: list[float]) -> float:
    if any(math.isnan(v) for v in values):
        return float("nan")
    return statistics.stdev(values) if len(values) > 1 else 0.0

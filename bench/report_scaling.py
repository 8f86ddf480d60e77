"""Report build on Ray workers: 1 process vs 2 workers, Ray's overhead on a quick report, and a per-task cost model.

1. Wide CNN: a `DigitCNN` with channels 64-128-256-512 on 8x8 digits, seeded weights, every
   unit paged (`max_units=None`, as `--units all`: 960 conv channels and the 64 units of the
   dense head), `ReportConfig.quick()` with the feature-visualisation steps and ablation
   inputs of the options. Built in one process (`LocalEngine`, torch's default threads), on a
   local Ray runtime with 2 workers (`open_engine(workers=2)` with a fresh task cache, as
   `--workers 2` does; Ray's start and shutdown included) and, for reference, in one process
   with one torch thread (what each Ray worker gets). Each build runs in a fresh subprocess.
   The one-process and 2-worker reports must agree: every unit page byte for byte, and
   report.json's sections within the tolerance of the tests.
2. Quick report of the default `DigitCNN` on 8x8 digits (`ReportConfig.quick()`): one process
   vs 2 workers, median of `--rounds` interleaved builds, and `open_engine(workers=2)`'s enter
   and exit timed alone (after `import ray`, timed once).
3. Cost model of the 2-worker wide build: every task is timed inside its worker, so each
   kind's time per unit (per input for the example search), Ray's time around the tasks (before
   a map's first task, between tasks) and the serial part (everything that is not a task) are
   measured. From them, T(N) = serial + per map (lead + work / (N x workers per node)), and the
   same scaled to a ResNet-50-sized model by unit count and multiply-adds per input. The
   projection prints its assumptions; the node speed-up (a GPU node) is a parameter, not a
   measurement.

Usage: python bench/report_scaling.py [--quick] [--steps 64] [--ablation-inputs 1000] [--rounds 3]
       [--node-workers 2] [--node-speedup 1 20] [--target-units 26000] [--target-macs 4.1e9]
       [--target-inputs 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

WIDE = (64, 128, 256, 512)
TOLERANCE = 1e-5  # relative, as REPORT_TOLERANCE in tests/cli/test_report.py
UNITS_PER_TASK = 32  # mechscope.report.units.UNITS_PER_TASK
SHARD_BATCH = 256  # inputs per batch of the example search; its shards are whole batches, 2 per worker
KINDS = {"_render_task": "feature visualisation", "_ablation_task": "ablation", "_shard_task": "example search"}
PER = {"feature visualisation": "unit", "ablation": "unit", "example search": "input"}
LABELS = {"one": "1 process", "ray": "2 Ray workers (--workers 2)", "one-thread": "1 process, 1 torch thread"}


class _TimedEngine:
    """Runs every task of `inner` through `_timed`; records each map's span and each task's span, worker and threads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.maps: list[dict[str, Any]] = []

    @property
    def workers(self) -> int:
        return int(self.inner.workers)

    def map(self, fn: Callable[[Any, Any], Any], items: Sequence[Any], *, shared: Any, cache: Any = None,
            desc: str | None = None) -> list[Any]:
        begin = time.time()
        out = self.inner.map(_timed, [(fn, item) for item in items], shared=shared, cache=cache, desc=desc)
        self.maps.append({"kind": KINDS.get(fn.__name__, fn.__name__), "begin": begin, "end": time.time(),
                          "tasks": [{"size": _size(fn.__name__, item), "start": t0, "stop": t1, "threads": threads,
                                     "pid": pid} for item, (_, t0, t1, threads, pid) in zip(items, out)]})
        return [value for value, *_ in out]


def _timed(shared: Any, job: tuple[Callable[[Any, Any], Any], Any]) -> tuple[Any, float, float, int, int]:
    """Run one task; return its value, its start and stop (wall clock), the worker's torch threads and process."""
    fn, item = job
    start = time.time()
    value = fn(shared, item)
    return value, start, time.time(), torch.get_num_threads(), os.getpid()


def _size(name: str, item: Any) -> int:
    """Units of a render or ablation task (layer, units, ...); inputs of an example-search shard (data, first, ...)."""
    return int(item[0].shape[0]) if name == "_shard_task" else len(item[1])


def _config(case: str, steps: int, ablation_inputs: int) -> Any:
    from mechscope.report import ReportConfig

    quick = ReportConfig.quick()
    if case == "quick":
        return quick
    return dataclasses.replace(quick, max_units=None, featurevis_steps=steps, ablation_inputs=ablation_inputs)


def _child(args: argparse.Namespace) -> None:
    """Build one report (`args.child`: one, one-thread, ray) or time Ray's start and stop (startup); print JSON."""
    from mechscope.engine import open_engine

    if args.child == "startup":
        begin = time.perf_counter()
        import ray  # noqa: F401

        imported = time.perf_counter() - begin
        enters, exits = [], []
        for _ in range(args.rounds):
            begin = time.perf_counter()
            with open_engine(workers=2):
                entered = time.perf_counter()
            enters.append(entered - begin)
            exits.append(time.perf_counter() - entered)
        print(json.dumps({"import": imported, "enter": enters, "exit": exits}))
        return
    from mechscope.cache import TaskCache
    from mechscope.report import build_report

    if args.child == "one-thread":
        torch.set_num_threads(1)
    workers = 2 if args.child == "ray" else 0
    cache = TaskCache(args.cache) if workers else None  # as `--workers 2` does, in a fresh folder
    begin = time.perf_counter()
    with open_engine(workers=workers) as inner:
        started = time.perf_counter()
        engine = _TimedEngine(inner)
        build_report(args.checkpoint, args.out, config=_config(args.case, args.steps, args.ablation_inputs),
                     engine=engine, cache=cache, progress=False)
        built = time.perf_counter()
        tree = _tree_cpu(os.getpid())  # before Ray's processes go: once gone they may count nowhere here
    ended = time.perf_counter()
    summary = json.loads((Path(args.out) / "report.json").read_text())
    print(json.dumps({"wall": ended - begin, "start": started - begin, "build": built - started,
                      "stop": ended - built, "threads": torch.get_num_threads(), "cpu": tree,
                      "sections": summary["seconds"], "pages": summary["pages"], "maps": engine.maps}))


def _run(mode: str, case: str, checkpoint: Path, out: Path, args: argparse.Namespace,
         rounds: int = 1) -> dict[str, Any]:
    """Run `_child` in a fresh interpreter and return what it printed."""
    command = [sys.executable, __file__, "--child", mode, "--case", case, "--checkpoint", str(checkpoint),
               "--out", str(out), "--cache", f"{out}-cache", "--steps", str(args.steps),
               "--ablation-inputs", str(args.ablation_inputs), "--rounds", str(rounds)]
    busy, mine, begin = _busy(), _children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    elapsed = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"the {mode} build of the {case} report failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    ours = max(_children_cpu() - mine, result.get("cpu", 0.0))
    result["others"] = max(_busy() - busy - ours, 0.0) / elapsed  # cores busy with other people's work meanwhile
    result["cores"] = ours / elapsed  # cores the build used (its process tree, Ray's processes included)
    return result


def _busy() -> float:
    """CPU-seconds the whole machine has been busy since boot (/proc/stat)."""
    with open("/proc/stat") as handle:
        ticks = [int(v) for v in handle.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _tree_cpu(root: int) -> float:
    """CPU-seconds of process `root` and every live process below it, with the children each has reaped."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    text = handle.read()
            except OSError:
                continue
            stats[int(name)] = fields = text[text.rindex(")") + 2:].split()
            parents.setdefault(int(fields[1]), []).append(int(name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(v) for v in stats[pid][11:15])  # utime, stime, cutime, cstime
        todo += parents.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    """CPU-seconds of the finished subprocesses of this process and their own finished subprocesses."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _checkpoint(folder: Path, name: str, channels: tuple[int, ...] | None) -> tuple[Path, int, float]:
    """A seeded DigitCNN on 8x8 digits saved as a checkpoint; its held-out images and multiply-adds per input."""
    from mechscope.data import digits_data
    from mechscope.models import build_seeded
    from mechscope.models.checkpoint import save_checkpoint
    from mechscope.models.digit_cnn import DigitCNN, DigitCNNConfig

    data = digits_data("digits")
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=channels), 0).eval()
    path = save_checkpoint(folder / name, model, data_spec=data.spec)
    return path, int(data.x_test.shape[0]), _macs(model, data.x_test[:1])


def _macs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds of the conv and linear layers for one input."""
    total = [0.0]

    def count(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += out.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.Linear):
            total[0] += out.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def _loads() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _close(a: Any, b: Any, where: str = "sections") -> str | None:
    """None when the JSON values agree (floats within TOLERANCE, relative), else where they first differ."""
    if type(a) is not type(b):
        return where
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return where
        return next((w for k in a if (w := _close(a[k], b[k], f"{where}.{k}")) is not None), None)
    if isinstance(a, list):
        if len(a) != len(b):
            return where
        return next((w for i, (x, y) in enumerate(zip(a, b)) if (w := _close(x, y, f"{where}[{i}]")) is not None), None)
    if isinstance(a, float):
        return None if abs(a - b) <= TOLERANCE * max(1.0, abs(b)) else where
    return None if a == b else where


def _same_report(one: Path, other: Path) -> tuple[bool, str]:
    """Whether two reports agree (unit pages byte for byte, report.json sections within TOLERANCE), and how."""
    pages = sorted(p.relative_to(one) for p in one.rglob("unit-*.html"))
    differ = [p for p in pages if not (other / p).is_file() or (one / p).read_text() != (other / p).read_text()]
    theirs = len(list(other.rglob("unit-*.html")))
    where = _close(*(json.loads((d / "report.json").read_text())["sections"] for d in (one, other)))
    same = not differ and theirs == len(pages) and where is None
    return same, (f"{len(pages) - len(differ)} of {len(pages)} unit pages identical ({theirs} in the other); "
                  f"report.json sections {'agree' if where is None else 'differ at ' + where} "
                  f"(floats within {TOLERANCE:g})")


def _kinds(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per task kind: tasks, units (or inputs), seconds inside the tasks, wall time of its maps."""
    out: dict[str, dict[str, float]] = {}
    for m in run["maps"]:
        row = out.setdefault(m["kind"], {"tasks": 0, "size": 0, "seconds": 0.0, "wall": 0.0})
        row["tasks"] += len(m["tasks"])
        row["size"] += sum(t["size"] for t in m["tasks"])
        row["seconds"] += sum(t["stop"] - t["start"] for t in m["tasks"])
        row["wall"] += m["end"] - m["begin"]
    return out


def _around(run: dict[str, Any]) -> dict[str, float]:
    """Ray's time around the tasks of a build's maps, in seconds.

    lead: the shortest wait from a map's start to a worker's first task (the function and the
    shared objects on their way); warm-up: what the maps waited beyond that (workers importing
    on first use), in all; gap: mean time between two tasks on one worker; tail: mean time from
    a worker's last task to its map's end.
    """
    leads, tails, gaps, n_gaps = [], [], 0.0, 0
    for m in run["maps"]:
        by_worker: dict[int, list[dict[str, Any]]] = {}
        for t in m["tasks"]:
            by_worker.setdefault(t["pid"], []).append(t)
        for tasks in by_worker.values():
            tasks.sort(key=lambda t: t["start"])
            tails.append(m["end"] - tasks[-1]["stop"])
            gaps += sum(b["start"] - a["stop"] for a, b in zip(tasks, tasks[1:]))
            n_gaps += len(tasks) - 1
        leads.append(min(t["start"] for t in m["tasks"]) - m["begin"])
    lead = min(leads)
    return {"lead": lead, "warmup": sum(x - lead for x in leads), "gap": gaps / max(n_gaps, 1),
            "tail": statistics.mean(tails), "maps": len(run["maps"])}


@dataclasses.dataclass(frozen=True)
class _CostModel:
    """What the projection needs, measured in one build on Ray."""

    per_item: dict[str, float]  # seconds per unit (per input for the example search) inside a task, one thread
    items: dict[str, int]  # units (inputs) of each kind in the measured build
    lead: float  # seconds from a map's start to its first task, once workers are warm
    warmup: float  # seconds the maps waited for workers importing on first use, in all (once per build)
    gap: float  # seconds between two tasks on one worker
    sections: float  # seconds of the sections that run in one process (every section but the units)
    unit_pages: float  # seconds per unit of the units section outside its maps (connections, pages)
    startup: float  # seconds of Ray's start and shutdown
    macs: float  # multiply-adds per input of the measured model

    @classmethod
    def measure(cls, run: dict[str, Any], units: int, macs: float) -> _CostModel:
        kinds, around = _kinds(run), _around(run)
        return cls(per_item={k: v["seconds"] / v["size"] for k, v in kinds.items()},
                   items={k: int(v["size"]) for k, v in kinds.items()}, lead=around["lead"],
                   warmup=around["warmup"], gap=around["gap"],
                   sections=sum(v for k, v in run["sections"].items() if k not in ("units", "total")),
                   unit_pages=max(run["sections"]["units"] - sum(v["wall"] for v in kinds.values()), 0.0) / units,
                   startup=run["start"] + run["stop"], macs=macs)

    def project(self, *, nodes: int, node_workers: int, speedup: float, units: int, inputs: int,
                macs: float) -> float:
        """Wall seconds on `nodes` nodes of `node_workers` workers running tasks `speedup` times faster."""
        slots, cost = nodes * node_workers, macs / self.macs / speedup
        total = self.startup + self.warmup + self.sections * cost + self.unit_pages * units
        for kind, per in self.per_item.items():
            items = inputs if kind == "example search" else units
            n_tasks = (min(2 * slots, math.ceil(items / SHARD_BATCH)) if kind == "example search"
                       else math.ceil(items / UNITS_PER_TASK))
            longest = per * cost * math.ceil(items / n_tasks) + self.gap  # a map lasts at least its longest task
            total += self.lead + max((per * cost * items + n_tasks * self.gap) / slots, longest)
        return total


def _wide(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], int, float]:
    """Part 1; returns the 2-worker build, the units paged and the model's multiply-adds per input."""
    checkpoint, n_test, macs = _checkpoint(root, "wide", WIDE)
    units = sum(WIDE) + 64  # conv channels, and the 64 ReLU units of the dense head (fc1)
    print(f"\n1. wide CNN {'-'.join(map(str, WIDE))} on 8x8 digits ({n_test} held-out images, {macs / 1e6:.1f} M "
          f"multiply-adds per input), seeded weights, all {units} units paged ({sum(WIDE)} conv channels + 64 "
          f"dense); ReportConfig.quick() with max_units=None, featurevis_steps={args.steps}, "
          f"ablation_inputs={args.ablation_inputs} ({min(args.ablation_inputs, n_test)} used)")
    modes = ["one", "ray"] if args.quick else ["one", "ray", "one-thread"]
    runs = {mode: _run(mode, "wide", checkpoint, root / f"wide-{mode}", args) for mode in modes}
    one, ray = runs["one"], runs["ray"]
    print(f"  (load average after these builds: {_loads()}; 1 process ran {one['threads']} torch threads)")
    print(f"  {'':<30} {'wall':>9} {'vs 1 process':>13} {'cores used':>11} {'others meanwhile':>17}")
    for mode, run in runs.items():
        extra = f"  (Ray start {run['start']:.1f} s, stop {run['stop']:.1f} s)" if mode == "ray" else ""
        print(f"  {LABELS[mode]:<30} {run['wall']:7.1f} s {one['wall'] / run['wall']:12.2f}x {run['cores']:11.2f} "
              f"{run['others']:17.2f}{extra}")
    ratio = one["wall"] / ray["wall"]
    verdict = "met" if ratio >= 1.6 else f"missed by {(1.6 - ratio) / 1.6:.0%}"
    print(f"  speed-up of 2 workers over 1 process: {ratio:.2f}x (target >= 1.6x: {verdict})")
    if "one-thread" in runs:
        alone = runs["one-thread"]["wall"] / ray["wall"]
        print(f"  speed-up of 2 workers over 1 process with 1 torch thread: {alone:.2f}x")
    same, detail = _same_report(root / "wide-one", root / "wide-ray")
    print(f"  same report: {same} ({detail}; {ray['pages']} pages)")
    print("  seconds per section (" + " / ".join(LABELS[m] for m in runs) + "):")
    print("    " + ", ".join(f"{k} " + "/".join(f"{run['sections'][k]:.1f}" for run in runs.values())
                             for k in one["sections"] if one["sections"][k] >= 0.05 or k == "total"))
    for mode, run in runs.items():
        print(f"  tasks, {LABELS[mode]}: " + "; ".join(
            f"{k} {int(v['tasks'])} x {v['seconds']:.1f} s inside, maps {v['wall']:.1f} s"
            for k, v in _kinds(run).items()))
    if not same:
        raise SystemExit("the 2-worker report differs from the one-process report")
    return ray, units, macs


def _quick(args: argparse.Namespace, root: Path) -> None:
    """Part 2: Ray's overhead on a quick report, and its start and stop alone."""
    checkpoint, n_test, _ = _checkpoint(root, "small", None)
    print(f"\n2. Ray's overhead on the quick report: default DigitCNN on 8x8 digits ({n_test} held-out images), "
          f"ReportConfig.quick(); median of {args.rounds} interleaved builds")
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "ray": []}
    for r in range(args.rounds):
        for mode in runs:
            runs[mode].append(_run(mode, "quick", checkpoint, root / f"quick-{mode}-{r}", args))
    alone = _run("startup", "quick", checkpoint, root / "startup", args, rounds=args.rounds)
    print(f"  (load average after these builds: {_loads()})")
    median = {mode: {key: statistics.median(run[key] for run in rs) for key in ("wall", "start", "build", "stop")}
              for mode, rs in runs.items()}
    one, ray = median["one"], median["ray"]
    overhead = ray["wall"] / one["wall"] - 1
    others = {mode: statistics.mean(run["others"] for run in rs) for mode, rs in runs.items()}
    print(f"  1 process                      {one['wall']:7.2f} s  (others used {others['one']:.2f} cores meanwhile)")
    print(f"  2 Ray workers (--workers 2)    {ray['wall']:7.2f} s  (others used {others['ray']:.2f} cores meanwhile)  "
          f"overhead {overhead:+.0%} (target <= 15%: {'met' if overhead <= 0.15 else 'missed'})")
    print(f"    Ray start {ray['start']:.2f} s ({ray['start'] / one['wall']:.0%} of 1 process), build "
          f"{ray['build']:.2f} s ({ray['build'] / one['build'] - 1:+.0%}), shutdown {ray['stop']:.2f} s "
          f"({ray['stop'] / one['wall']:.0%})")
    around = _around(runs["ray"][0])
    kinds = {mode: _kinds(rs[0]) for mode, rs in runs.items()}
    print("    tasks (first round), 1 process / 2 workers: " + "; ".join(
        f"{k} maps {kinds['one'].get(k, {}).get('wall', 0.0):.2f}/{v['wall']:.2f} s"
        for k, v in kinds["ray"].items())
          + f"; Ray: workers' warm-up {around['warmup']:.2f} s, then {around['lead'] * 1000:.0f} ms before a map's "
            f"first task, {around['gap'] * 1000:.0f} ms between tasks, {around['tail'] * 1000:.0f} ms idle at a map's "
            "end (per worker)")
    print(f"  open_engine(workers=2) alone: enter {statistics.median(alone['enter']):.2f} s, exit "
          f"{statistics.median(alone['exit']):.2f} s (median of {args.rounds}; `import ray` before it "
          f"{alone['import']:.2f} s, once)")
    same, detail = _same_report(root / "quick-one-0", root / "quick-ray-0")
    print(f"  same report: {same} ({detail})")


def _cost(args: argparse.Namespace, ray: dict[str, Any], units: int, macs: float) -> None:
    """Part 3: the measured cost model and its projection."""
    model = _CostModel.measure(ray, units, macs)
    around = _around(ray)
    print("\n3. cost model, measured in the 2-worker build of the wide CNN (one torch thread per worker)")
    for kind, per in model.per_item.items():
        print(f"  {kind:<22} {per * 1000:8.2f} ms per {PER.get(kind, 'item')} ({model.items[kind]} "
              f"{PER.get(kind, 'item')}s)")
    print(f"  Ray around the tasks: workers' warm-up (imports on first use) {model.warmup:.2f} s in all; then "
          f"{model.lead * 1000:.0f} ms from a map's start to its first task ({around['maps']} maps), "
          f"{model.gap * 1000:.1f} ms between tasks, {around['tail'] * 1000:.0f} ms idle at a map's end (per worker)")
    print(f"  serial: sections not run as tasks {model.sections:.1f} s; units section outside tasks (connections, "
          f"pages) {model.unit_pages * 1000:.2f} ms per unit; Ray start + stop {model.startup:.1f} s")
    kinds = _kinds(ray)
    inside = sum(k["seconds"] for k in kinds.values())
    outside = ray["wall"] - sum(k["wall"] for k in kinds.values()) - model.startup
    print(f"  Amdahl: {outside:.1f} s outside tasks (Ray's start and stop not counted), {inside:.1f} s inside; "
          f"without any overhead 2 workers would be at most {(outside + inside) / (outside + inside / 2):.2f}x "
          f"one worker")
    n_test = model.items.get("example search", 0)
    here = model.project(nodes=1, node_workers=2, speedup=1.0, units=units, inputs=n_test, macs=macs)
    print(f"  the model on this build (1 node x 2 workers): {here:.1f} s; measured {ray['wall']:.1f} s")
    cost = args.target_macs / macs
    print(f"\n  PROJECTION from this CPU measurement, not a measurement: T(N) = Ray start/stop + warm-up + serial + "
          f"per map (lead + work / (N nodes x {args.node_workers} workers)), a map lasting at least its longest task")
    header = "".join(f" {'this CNN':>9} {'ResNet-50-sized':>16}" for _ in args.node_speedup)
    print(f"  {'node speed-up:':<14}" + "".join(f" {f'{s:g}x' + (' (this CPU)' if s == 1 else ' (assumed)'):>26}"
                                                for s in args.node_speedup))
    print(f"  {'nodes':<14}{header}")
    for nodes in (1, 8, 64):
        cells = []
        for speedup in args.node_speedup:
            mine = model.project(nodes=nodes, node_workers=args.node_workers, speedup=speedup, units=units,
                                 inputs=n_test, macs=macs)
            target = model.project(nodes=nodes, node_workers=args.node_workers, speedup=speedup,
                                   units=args.target_units, inputs=args.target_inputs, macs=args.target_macs)
            cells.append(f" {mine:>7.0f} s {_hours(target):>16}")
        print(f"  {nodes:<14}" + "".join(cells))
    print(f"  assumptions: ResNet-50-sized = {args.target_units:,} units (every conv channel paged), "
          f"{args.target_macs:.2g} multiply-adds per input ({cost:,.0f}x this CNN's), example search over "
          f"{args.target_inputs:,} inputs; a task's time per unit (per input) is this CNN's x the multiply-add "
          f"ratio / the node speed-up (same steps and ablation inputs; compute, not memory or image size, sets "
          f"the cost); the sections outside tasks scale the same way on a driver as fast as a node; unit pages "
          f"cost what they cost here per unit; Ray's time around tasks is this loopback measurement (no network); "
          f"the node speed-up is a stated parameter, not measured.")


def _hours(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one round, no 1-thread build")
    parser.add_argument("--steps", type=int, default=64, help="feature-visualisation steps of the wide report")
    parser.add_argument("--ablation-inputs", type=int, default=1000, help="held-out inputs behind each ablation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved builds of the quick report per engine")
    parser.add_argument("--node-workers", type=int, default=2, help="projection: workers per node")
    parser.add_argument("--node-speedup", type=float, nargs="+", default=[1.0, 20.0],
                        help="projection: how many times faster a node runs a task than a worker here (a GPU: >1)")
    parser.add_argument("--target-units", type=int, default=26_000, help="projection: units of the large model")
    parser.add_argument("--target-macs", type=float, default=4.1e9,
                        help="projection: multiply-adds per input of the large model (ResNet-50 at 224x224: ~4.1e9)")
    parser.add_argument("--target-inputs", type=int, default=10_000, help="projection: inputs of its example search")
    parser.add_argument("--child", choices=["one", "one-thread", "ray", "startup"], help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=["wide", "quick"], default="wide", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.quick:
        args.steps, args.ablation_inputs, args.rounds = 8, 100, 1
    began, before = time.perf_counter(), _loads()
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads by default); "
          f"load average (1, 5, 15 min) before: {before}")
    with tempfile.TemporaryDirectory(prefix="report-scaling-") as tmp:
        ray, units, macs = _wide(args, Path(tmp))
        _quick(args, Path(tmp))
        _cost(args, ray, units, macs)
    print(f"\nload average before: {before}; after: {_loads()}; whole script {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

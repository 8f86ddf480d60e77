"""The tour: train every built-in target and run the analyses, resumably, into one folder.

Each step writes into `OUT/<step name>/` and finishes by writing `step.json` atomically;
a step whose `step.json` exists is reused unless `force=True`, so an interrupted tour
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mechscope import targets
from mechscope.errors import MechscopeError

__all__ = ["TourStep", "tour_steps", "run_tour", "write_json_atomic"]

STEP_FILE = "step.json"


@dataclass(frozen=True)
class TourStep:
    """One resumable unit of the tour."""

    name: str  # folder name under OUT
    run: Callable[[Path], dict[str, Any]]  # writes into the folder, returns JSON-able metrics
    quick: bool = True  # part of `--quick`


def _trained(fn: Callable[..., targets.TrainedTarget], **kwargs: Any) -> Callable[[Path], dict[str, Any]]:
    def run(folder: Path) -> dict[str, Any]:
        result = fn(folder / "checkpoint", progress=False, **kwargs)
        return {**result.metrics, "checkpoint": str(result.checkpoint)}

    return run


def tour_steps(*, quick: bool = False) -> list[TourStep]:
    """The steps `run_tour` runs, in order (`quick` keeps the fast ones)."""
    steps = [
        TourStep("modular-mlp-mod2", _trained(targets.train_modular_mlp, modulus=2)),
        TourStep("modular-mlp-mod5", _trained(targets.train_modular_mlp, modulus=5, hidden=32), quick=False),
        TourStep("tiny-relu-sum", _trained(targets.train_tiny_relu, function="sum")),
        TourStep("tiny-relu-weighted", _trained(targets.train_tiny_relu, function="weighted")),
        TourStep("tiny-relu-product", _trained(targets.train_tiny_relu, function="product")),
        TourStep("digit-cnn-digits", _trained(targets.train_digit_cnn, data="digits", gap=True)),
        TourStep("digit-cnn-mnist5k", _trained(targets.train_digit_cnn, data="mnist5k"), quick=False),
        TourStep("digit-cnn-gap-mnist5k", _trained(targets.train_digit_cnn, data="mnist5k", gap=True), quick=False),
    ]
    return [s for s in steps if s.quick] if quick else steps


def run_tour(out: str | os.PathLike[str], *, quick: bool = False, force: bool = False) -> dict[str, Any]:
    """Run every tour step into `out`; return a summary (also written to `out/tour.json`)."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise MechscopeError(f"--out {str(root)!r} exists and is not a folder; choose a folder path.")
    root.mkdir(parents=True, exist_ok=True)
    steps = tour_steps(quick=quick)
    records = []
    for step in tqdm(steps, desc="tour", unit="step", disable=None):
        folder = root / step.name
        marker = folder / STEP_FILE
        if marker.is_file() and not force:
            try:
                records.append({**json.loads(marker.read_text()), "reused": True})
                continue
            except json.JSONDecodeError:
                pass  # a damaged marker: run the step again
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        metrics = step.run(folder)
        record = {"name": step.name, "metrics": metrics, "seconds": time.perf_counter() - start}
        write_json_atomic(marker, record)
        records.append({**record, "reused": False})
    summary = {"out": str(root), "quick": quick, "steps": records}
    write_json_atomic(root / "tour.json", summary)
    return summary


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a temporary sibling and rename it over `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)

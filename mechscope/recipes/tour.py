"""The tour: train every built-in model, run every analysis, and write a browsable report of each.

Each step writes into `OUT/<step name>/` and finishes by writing `step.json` atomically;
a step whose `step.json` exists is reused unless `force=True`, so an interrupted tour
resumes where it stopped. Every model has two steps: `<model>` trains it into
`<model>/checkpoint`, `<model>/report` (or `report-quick`) builds its report. At the
end `OUT/index.html` links every report.

Models (seed articles): the mod-2 ModularMLP (seed 000), TinyReLU on sum, weighted sum
and product (seed 002), DigitCNN with a global-average-pooling head (so CAM applies) on
the MNIST 5k subset (quick: scikit-learn's 8x8 digits, a smaller net and fewer epochs),
and the grokking MLP on (a + b) mod 59 (quick: mod 31).
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

from mechscope.atomic import check_output, write_file
from mechscope.recipes import builtin

__all__ = ["TourStep", "tour_steps", "run_tour", "is_tour", "write_json_atomic", "INDEX_FILE", "STEP_FILE",
           "TOUR_FILE"]

STEP_FILE = "step.json"
INDEX_FILE = "index.html"
TOUR_FILE = "tour.json"  # written first (the marker of a tour folder) and rewritten with the summary
_FORMAT = "mechscope-tour"

# The quick tour's grokking run: a smaller table that still groks (test accuracy 0.993 at step 600, seed 0).
_QUICK_GROK_MODULUS = 31
_QUICK_GROK_STEPS = 600


@dataclass(frozen=True)
class TourStep:
    """One resumable unit of the tour."""

    name: str  # folder under OUT (may be nested: "digit-cnn-digits/report")
    run: Callable[[Path], dict[str, Any]]  # writes into the folder, returns JSON-able metrics
    quick: bool = True  # part of `--quick`
    is_report: bool = False  # the folder holds a report that the tour index links


def _trained(fn: Callable[..., builtin.TrainedModel], **kwargs: Any) -> Callable[[Path], dict[str, Any]]:
    def run(folder: Path) -> dict[str, Any]:
        result = fn(folder / "checkpoint", progress=False, **kwargs)
        return {**result.metrics, "checkpoint": str(result.checkpoint)}

    return run


def _reported(name: str, *, quick: bool, title: str) -> Callable[[Path], dict[str, Any]]:
    def run(folder: Path) -> dict[str, Any]:
        from mechscope.report import build_report  # the report pulls in matplotlib: only when a step needs it

        root = folder.parent.parent
        index = build_report(folder.parent / "checkpoint", folder, quick=quick, title=title,
                             home=("tour", root / INDEX_FILE), progress=True)
        summary = json.loads((folder / "report.json").read_text())
        shown = [s["key"] for s in summary["sections"] if s.get("page")]
        return {"index": str(index), "pages": summary["pages"], "sections": shown}

    run.__name__ = f"report_{name}"
    return run


def _grokking(modulus: int, *, quick: bool) -> Callable[[Path], dict[str, Any]]:
    def run(folder: Path) -> dict[str, Any]:
        from mechscope.models import GrokkingMLPConfig
        from mechscope.models.grokking_train import GrokkingTrainConfig
        from mechscope.recipes.grokking import train_grokking_mlp

        if quick:  # a smaller table that still groks: measured in the README's tour section
            model_config = GrokkingMLPConfig(modulus=modulus, d_embed=32, width=64)
            train_config = GrokkingTrainConfig(steps=_QUICK_GROK_STEPS, lr=2e-2)
            fraction = 0.7
        else:
            model_config, train_config, fraction = GrokkingMLPConfig(modulus=modulus), None, 0.5
        result = train_grokking_mlp(folder / "checkpoint", model_config=model_config, train_config=train_config,
                                    train_fraction=fraction, progress=False)
        return {**result.metrics, "checkpoint": str(result.checkpoint)}

    return run


def _grokking_transformer(folder: Path) -> dict[str, Any]:
    """The default GrokkingTransformer (p = 59, attention rate 1): the full tour's transformer."""
    from mechscope.recipes.grokking import train_grokking_transformer

    result = train_grokking_transformer(folder / "checkpoint", progress=False)
    return {**result.metrics, "checkpoint": str(result.checkpoint)}


def _quick_digits(folder: Path) -> dict[str, Any]:
    """A small GAP DigitCNN on scikit-learn's 8x8 digits, trained briefly (the quick tour's CNN)."""
    from mechscope.data import digits_data
    from mechscope.models import DigitCNN, DigitCNNConfig, TrainConfig, build_seeded

    data = digits_data("digits")
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, gap=True, channels=(12, 24, 48), pools=0), 0)
    config = TrainConfig(epochs=20, batch_size=64, lr=6e-3, cosine=True)
    result = builtin.fit_and_save("digit-cnn", model, data, folder / "checkpoint", config=config, progress=False)
    return {**result.metrics, "checkpoint": str(result.checkpoint)}


def tour_steps(*, quick: bool = False) -> list[TourStep]:
    """The steps `run_tour` runs, in order: each model is trained, then reported."""
    if quick:
        trained = [
            ("modular-mlp-mod2", "Modular MLP, (a + b) mod 2", _trained(builtin.train_modular_mlp, modulus=2)),
            ("tiny-relu-sum", "TinyReLU, sum", _trained(builtin.train_tiny_relu, function="sum")),
            ("tiny-relu-weighted", "TinyReLU, weighted sum", _trained(builtin.train_tiny_relu, function="weighted")),
            ("tiny-relu-product", "TinyReLU, product", _trained(builtin.train_tiny_relu, function="product")),
            ("digit-cnn-digits", "DigitCNN (GAP), 8x8 digits", _quick_digits),
            (f"grokking-mlp-p{_QUICK_GROK_MODULUS}", f"Grokking MLP, (a + b) mod {_QUICK_GROK_MODULUS}",
             _grokking(_QUICK_GROK_MODULUS, quick=True)),
        ]
    else:
        trained = [
            ("modular-mlp-mod2", "Modular MLP, (a + b) mod 2", _trained(builtin.train_modular_mlp, modulus=2)),
            ("tiny-relu-sum", "TinyReLU, sum", _trained(builtin.train_tiny_relu, function="sum")),
            ("tiny-relu-weighted", "TinyReLU, weighted sum", _trained(builtin.train_tiny_relu, function="weighted")),
            ("tiny-relu-product", "TinyReLU, product", _trained(builtin.train_tiny_relu, function="product")),
            ("digit-cnn-gap-mnist5k", "DigitCNN (GAP), MNIST 5k",
             _trained(builtin.train_digit_cnn, data="mnist5k", gap=True)),
            ("grokking-mlp-p59", "Grokking MLP, (a + b) mod 59", _grokking(59, quick=False)),
            ("grokking-transformer-p59", "Grokking transformer, (a + b) mod 59", _grokking_transformer),
        ]
    report = "report-quick" if quick else "report"
    steps: list[TourStep] = []
    for name, title, run in trained:
        steps.append(TourStep(name, run, quick=quick))
        steps.append(TourStep(f"{name}/{report}", _reported(name, quick=quick, title=title), quick=quick,
                              is_report=True))
    return steps


def run_tour(out: str | os.PathLike[str], *, quick: bool = False, force: bool = False) -> dict[str, Any]:
    """Run every tour step into `out`, then write `out/index.html`; return a summary (also `out/tour.json`)."""
    root = check_output(out, owned=is_tour, what="a mechscope tour")
    root.mkdir(parents=True, exist_ok=True)
    if not is_tour(root):
        write_json_atomic(root / TOUR_FILE, {"format": _FORMAT, "out": str(root), "quick": quick, "steps": []})
    steps = tour_steps(quick=quick)
    records = []
    started, cpu_started = time.perf_counter(), time.process_time()
    bar = tqdm(steps, desc="tour", unit="step", disable=None)
    for step in bar:
        bar.set_postfix_str(step.name)
        folder = root / step.name
        marker = folder / STEP_FILE
        if marker.is_file() and not force:
            try:
                records.append({**json.loads(marker.read_text()), "reused": True})
                continue
            except json.JSONDecodeError:
                pass  # a damaged marker: run the step again
        folder.mkdir(parents=True, exist_ok=True)
        start, cpu = time.perf_counter(), time.process_time()
        metrics = step.run(folder)
        record = {"name": step.name, "metrics": metrics, "seconds": time.perf_counter() - start,
                  "cpu_seconds": time.process_time() - cpu}
        write_json_atomic(marker, record)
        records.append({**record, "reused": False})
    reports = [root / s.name for s in steps if s.is_report]
    index = None
    if reports:
        from mechscope.report import build_index

        index = str(build_index(root, reports, title="mechscope tour", intro=_intro(quick)))
    summary = {"format": _FORMAT, "out": str(root), "quick": quick, "index": index, "steps": records,
               "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started}
    write_json_atomic(root / TOUR_FILE, summary)
    return summary


def _intro(quick: bool) -> str:
    mode = ("the quick tour (small step counts, 8x8 digits, grokking mod 31)" if quick
            else "the full tour (MNIST 5k, grokking mod 59)")
    return (f"Every built-in model of the seed articles, trained and analysed: {mode}. Open a report to browse "
            "its analyses, layers and units; every page links back here.")


def is_tour(path: Path) -> bool:
    """True when the folder `path` holds a mechscope tour (by its tour.json marker)."""
    try:
        with open(Path(path) / TOUR_FILE, "rb") as handle:
            return f'"format": "{_FORMAT}"'.encode() in handle.read(4096)
    except OSError:
        return False


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a temporary sibling and rename it over `path` (a JSON file the tour wrote)."""
    write_file(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2)), owned=_owned_json,
               what="a tour record")


def _owned_json(path: Path) -> bool:
    return path.name in (STEP_FILE, TOUR_FILE) and path.is_file()

"""Seed 000's convolutional-probe article, end to end.

Seed 000 trains a 7-layer tanh network on (a + b) mod 2, records its five hidden layers
on the 10,000 test pairs as 5 x 5 activation images (rounded to 2 decimals), and trains
a convolutional probe (3 kernels of 2 x 2, max over kernels, tanh, two hidden layers of
30, one softmax per group) to recover a, b and the network's own output from them, on a
90/10 split. `reproduce_article` does all of it in one call and adds what a probing
claim needs: a majority baseline, a control task, selectivity, an untrained copy, and
the spread over seeds (`mechscope.probes.probe_modular_mlp`).

Example:
    >>> run = reproduce_article(modulus=2)
    >>> run.report.heads, run.report.all_heads_accuracy
    ({'a': 1.0, 'b': 1.0, 'output': 1.0}, 1.0)
    >>> save_probe_figures(run, "figures/")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mechscope.data import modular_data
from mechscope.data.modular import Operation
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded, train
from mechscope.models.train import evaluate
from mechscope.probes import Probe, ProbeRun, probe_modular_mlp
from mechscope.probes.rigor import Split
from mechscope.recipes.builtin import PathLike

__all__ = ["reproduce_article", "article_hidden", "save_probe_figures"]


def article_hidden(modulus: int) -> int:
    """Hidden width of the article's model for `modulus`: 5 (the article) up to mod 3, 32 from mod 4 on.

    Five units per layer suffice for mod 2 and 3; larger moduli are trained wider (as
    `mechscope train modular-mlp --modulus 5 --hidden 32`), which widens the image to 5 x 32.
    """
    return 5 if modulus <= 3 else 32


def reproduce_article(
    modulus: int = 2,
    operation: Operation = "+",
    *,
    hidden: int | None = None,
    probe: Probe | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    split: Split = "examples",
    seed: int = 0,
    progress: bool = False,
) -> ProbeRun:
    """Train the article's model on 10,000 random pairs, then probe it (`probe_modular_mlp`).

    Args:
        modulus: m; the article uses 2.
        operation: "+", "-" or "*".
        hidden: Units per hidden layer; default `article_hidden(modulus)` (5, or 32 from mod 4).
        probe: Unfitted probe; default the article's ConvProbe.
        seeds: Seeds of the probe runs.
        split: "examples" (the article) or "types" (hold out whole (a, b) pairs).
        seed: Seed of the model's data and initial weights.
        progress: Show progress bars.

    Returns:
        ProbeRun with `target_accuracy` the trained model's own held-out accuracy.
    """
    width = article_hidden(modulus) if hidden is None else hidden
    data = modular_data(modulus, operation, n_train=10_000, n_test=10_000, seed=seed)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=modulus, hidden=width), seed)
    train(model, data, progress=progress)
    model.eval()
    run = probe_modular_mlp(model, data, probe=probe, seeds=seeds, split=split, progress=progress)
    accuracy = evaluate(model, data.x_test, data.y_test, "classification")["test_accuracy"]
    return replace(run, target_accuracy=accuracy)


def save_probe_figures(run: ProbeRun, out_dir: PathLike, *, max_cases: int | None = 25) -> list[Path]:
    """Write the run's pictures as PNGs into `out_dir` and return their paths.

    Always `probe_accuracy.png` (task vs baseline, control and untrained copy); for a
    ConvProbe also `kernels.png` (the learned kernels) and `kernel_responses.png` (each
    kernel's response to one example per case: rows = cases, columns = kernels); see
    `mechscope.plots.probe_run.probe_run_figures`.

    Args:
        run: A ProbeRun.
        out_dir: Folder (created if missing); files are written atomically.
        max_cases: Show at most this many cases (None: all).
    """
    # matplotlib loads only when figures are drawn: `mechscope train` and the tour import this package
    from mechscope.plots import save_figure
    from mechscope.plots.probe_run import probe_run_figures

    out = Path(out_dir)
    return [save_figure(fig, out / f"{stem}.png") for stem, fig in probe_run_figures(run, max_cases=max_cases).items()]

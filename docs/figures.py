"""Draw the figures of the documentation into docs/img/ with small models and built-in data.

Run from the repository root: `.venv/bin/python docs/figures.py` (a few minutes on two CPU
cores; `--only circuit formula` redraws some). Every figure comes from the library's own
plot functions (or, for the report, a headless-Chromium screenshot of a report page), on
models trained here from scikit-learn's 8x8 digits and generated toy data, with fixed seeds.
The PNGs are kept in the repository, so building the site needs neither this script nor
trained models.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

IMG = Path(__file__).resolve().parent / "img"


def save(fig: Figure, name: str) -> Path:
    """Write `fig` as docs/img/<name>.png at the documentation's resolution."""
    from mechscope.plots import save_figure

    path = save_figure(fig, IMG / f"{name}.png")
    print(f"  {path.relative_to(IMG.parent.parent)}: {path.stat().st_size / 1024:.0f} KB")
    return path


@functools.cache
def digits_model() -> tuple[torch.nn.Module, object, object]:
    """The quick tour's CNN: a GAP DigitCNN with channels (12, 24, 48) on 8x8 digits, 20 epochs."""
    from mechscope.data import digits_data
    from mechscope.models import DigitCNN, DigitCNNConfig, TrainConfig, build_seeded, train

    data = digits_data("digits", seed=0)
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, gap=True, channels=(12, 24, 48), pools=0), 0)
    result = train(model, data, TrainConfig(epochs=20, batch_size=64, lr=6e-3, cosine=True), progress=False)
    print(f"  DigitCNN: test accuracy {result.metrics['test_accuracy']:.3f}")
    return model.eval(), data, result


def training_curves() -> None:
    from mechscope.plots.training import plot_training_curves

    _, _, result = digits_model()
    save(plot_training_curves(result.history, title="DigitCNN on 8x8 digits"), "training_curves")


def capture_activations() -> None:
    from mechscope.circuits import activation_maps
    from mechscope.plots.circuits import plot_activation_maps

    model, data, _ = digits_model()
    save(plot_activation_maps(activation_maps(model, data.x_test[:1])), "capture_activations")


def probes_by_layer() -> None:
    from mechscope.plots.probes import plot_accuracy_by_layer
    from mechscope.probes import probe_by_layer, unit_means

    model, data, _ = digits_model()
    x, y = data.x_test, data.y_test
    labels = {"digit": y, "digit >= 5": (y >= 5).long()}
    table = probe_by_layer(model, x, labels, ["relu1", "relu2", "relu3"], features=unit_means(model))
    save(plot_accuracy_by_layer(table), "probe_by_layer")


def featurevis_grid() -> None:
    from mechscope.featurevis import InputSpace, RenderConfig, channel, evidence, render
    from mechscope.plots.featurevis import plot_layer_grid

    model, data, _ = digits_model()
    space = InputSpace.from_data(data.x_train)
    units = channel("relu3", range(24))
    result = render(model, units, space, config=RenderConfig(steps=256, restarts=2), progress=False)
    ev = evidence(model, units, result.images, data.all_inputs(), space=space)
    save(plot_layer_grid(result.images, title="relu3, channels 0-23", evidence=ev), "featurevis_grid")


def attribution() -> None:
    from mechscope.attribution import (
        CAM,
        GradCAM,
        GradientXInput,
        GuidedBackprop,
        IntegratedGradients,
        Saliency,
        cascading_randomization,
    )
    from mechscope.plots.attribution import plot_attribution_grid, plot_sanity_curves

    model, data, _ = digits_model()
    rows = [int((data.y_test == c).nonzero()[0, 0]) for c in (0, 2, 4, 7)]  # one digit of each of four classes
    x = data.x_test[rows]
    methods = [Saliency(model), GradientXInput(model), IntegratedGradients(model), GuidedBackprop(model),
               CAM(model), GradCAM(model)]
    maps = {m.label: m.attribute(x) for m in methods}
    labels = [f"label {int(c)}" for c in data.y_test[rows]]
    save(plot_attribution_grid(x, maps, row_labels=labels), "attribution_grid")
    sanity = cascading_randomization(model, methods, data.x_test[:64])
    save(plot_sanity_curves(sanity), "attribution_sanity")


def circuits() -> None:
    from mechscope.circuits import class_circuits, dataset_examples
    from mechscope.plots.circuits import plot_class_circuit, plot_dataset_examples

    model, data, _ = digits_model()
    found = class_circuits(model, data)
    save(plot_class_circuit(found, 3), "circuit")
    inputs = data.x_test
    examples = dataset_examples(model, inputs, ["relu3"], k=9, progress=False)
    save(plot_dataset_examples(examples["relu3"], inputs, labels=data.y_test, units=list(range(8))), "dataset_examples")


def formula() -> None:
    from mechscope.data import function_data
    from mechscope.models import TinyReLU, TinyReLUConfig, build_seeded, train
    from mechscope.models.train import default_train_config
    from mechscope.plots.formula import plot_formula
    from mechscope.symbolic import read_formula

    data = function_data("product", seed=0)
    model = build_seeded(TinyReLU, TinyReLUConfig(n_inputs=5, hidden=1), 0)
    train(model, data, default_train_config(model, data), progress=False)
    save(plot_formula(read_formula(model, data)), "formula")


def fourier() -> None:
    from mechscope.data import modular_data
    from mechscope.fourier import analyze_modular, progress_measures
    from mechscope.models import GrokkingMLP, GrokkingMLPConfig, build_seeded
    from mechscope.models.grokking_train import GrokkingTrainConfig, train_grokking
    from mechscope.plots.fourier import plot_frequency_spectrum, plot_logit_spectrum_2d, plot_progress

    # The quick tour's grokking run: p = 31, 70% of the pairs for training, 600 full-batch steps.
    data = modular_data(31, "+", encoding="pairs", test_fraction=0.3, seed=0)
    model = build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=31, d_embed=32, width=64), 0)
    run = train_grokking(model, data, GrokkingTrainConfig(steps=600, lr=2e-2, snapshot_every=10), progress=False)
    print(f"  GrokkingMLP p=31: {run.metrics}")
    result = analyze_modular(model, data=data)
    keys = result.key_frequencies
    spectra = {"embedding": result.embedding, "logits along the output class": result.output}
    save(plot_frequency_spectrum(spectra, key_frequencies=keys), "fourier_spectrum")
    save(plot_logit_spectrum_2d(result.logits_2d), "fourier_logits_2d")
    rows = progress_measures(model, run.snapshots, keys, data=data)
    save(plot_progress(run.history, progress=rows, key_frequencies=keys), "fourier_progress")


def report_unit() -> None:
    from mechscope.report import build_report

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("  skipped: no chromium to take the screenshot with")
        return
    model, data, _ = digits_model()
    with tempfile.TemporaryDirectory() as tmp:
        index = build_report(model, Path(tmp) / "report", data=data, quick=True, title="DigitCNN, 8x8 digits",
                             progress=False)
        page = _first_unit_page(index.parent)
        shot = Path(tmp) / "shot.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={shot}", "--window-size=1100,1300", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
        _save_screenshot(shot, IMG / "report_unit.png")


def _first_unit_page(root: Path) -> Path:
    """A unit page of the last conv layer: the one with the richest content."""
    pages = sorted(p for p in root.rglob("*.html") if "relu3" in p.as_posix() and p.parent.name != "report")
    units = [p for p in pages if p.name != "index.html"] or pages
    if not units:
        raise RuntimeError(f"no unit page of relu3 under {root}")
    return units[0]


def _save_screenshot(shot: Path, path: Path) -> None:
    """Write the screenshot as an 8-bit palette PNG (a page is mostly flat colour)."""
    from PIL import Image

    image = Image.open(shot).convert("RGB").quantize(colors=128)
    image.save(path, optimize=True)
    print(f"  {path.relative_to(IMG.parent.parent)}: {path.stat().st_size / 1024:.0f} KB")


def patching() -> None:
    """A small grokking transformer (p = 59, d_model 64): patching, attribution patching, lens, attention."""
    from mechscope.data import modular_data
    from mechscope.lens import attention_patterns, direct_logit_attribution, logit_lens
    from mechscope.models import build_seeded
    from mechscope.models.grokking_train import GrokkingTrainConfig, train_grokking
    from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
    from mechscope.patching import activation_patching, attribution_patching, compare, default_pairing
    from mechscope.plots.patching import (
        plot_attention,
        plot_logit_attribution,
        plot_logit_lens,
        plot_patching,
        plot_patching_comparison,
    )

    data = modular_data(59, "+", encoding="pairs", test_fraction=0.4, seed=0)
    model = build_seeded(GrokkingTransformer, GrokkingTransformerConfig(modulus=59, d_model=64, d_mlp=256), 0)
    run = train_grokking(model, data, GrokkingTrainConfig(steps=800, lr=3e-3), progress=False)
    print(f"  GrokkingTransformer: test accuracy {run.metrics['test_accuracy']:.3f}, grokked at {run.grokked_at()}")
    model.eval()
    pairing = default_pairing(data, 16)
    layers = ["blocks.0.resid_pre", "blocks.0.resid_mid", "blocks.0.resid_post"]
    exact = activation_patching(model, pairing.clean, pairing.corrupt, layers, pairing.metric)
    approx = attribution_patching(model, pairing.clean, pairing.corrupt, layers, pairing.metric)
    tokens = ["a", "b", "="]
    save(plot_patching(exact, cell_labels=tokens), "patching_positions")
    heads = activation_patching(model, pairing.clean, pairing.corrupt, "blocks.0.attn.z", pairing.metric,
                                along="head")
    save(plot_patching(heads), "patching_heads")
    save(plot_patching_comparison(compare(exact, approx), cell_labels=tokens), "patching_attribution")
    x, y = data.x_test[:64], data.y_test[:64]
    save(plot_logit_lens(logit_lens(model, x, [layers[0], layers[2]], unembed="unembed", answer=y)), "logit_lens")
    parts = ["blocks.0.resid_pre", "blocks.0.attn.heads", "blocks.0.mlp"]
    save(plot_logit_attribution(direct_logit_attribution(model, x, parts, unembed="unembed", answer=y)),
         "logit_attribution")
    pattern = attention_patterns(model, x)["blocks.0.attn.pattern"].mean(dim=0)
    save(plot_attention(pattern, tokens=tokens, title="blocks.0.attn.pattern (mean over 64 inputs)"), "attention")


def sweep() -> None:
    """The default sweep: 20 seeds x moduli 2, 3 and 5 of the modular MLP, each trained and probed (~1 min)."""
    from mechscope.recipes import sweep_modular

    save(sweep_modular().figure(), "sweep")


FIGURES: dict[str, Callable[[], None]] = {
    "training_curves": training_curves,
    "capture": capture_activations,
    "probes": probes_by_layer,
    "formula": formula,
    "featurevis": featurevis_grid,
    "attribution": attribution,
    "circuit": circuits,
    "fourier": fourier,
    "patching": patching,
    "report": report_unit,
    "sweep": sweep,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="Draw only these figures.")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    IMG.mkdir(exist_ok=True)
    for name in args.only or FIGURES:
        start = time.perf_counter()
        print(f"{name}:")
        FIGURES[name]()
        print(f"  {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

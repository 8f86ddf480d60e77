"""`mechscope probe fit CHECKPOINT`: decode a model's inputs and outputs from its hidden activations."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import Choice, FiguresOpt, FormatOpt
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.capture import select_output
from mechscope.limits import MAX_DRAWS, MAX_LAYERS, MAX_SEED, MAX_STEPS, MAX_WIDTH
from mechscope.errors import LayerNameError
from mechscope.models import ModularMLP
from mechscope.plots import save_figure
from mechscope.plots.probes import plot_accuracy_by_layer
from mechscope.probes.conv import Pooling
from mechscope.probes import ConvProbe, LinearProbe, ProbeRun, probe_activation_image, probe_by_layer, probe_modular_mlp
from mechscope.probes.rigor import Split
from mechscope.recipes.seed000_probes import save_probe_figures
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n"
    "  mechscope probe fit runs/modular-mlp-mod2\n\n"
    "  mechscope probe fit runs/modular-mlp-mod5 --seeds 5 --out figures/mod5 --format json\n\n"
    "  mechscope probe fit runs/modular-mlp-mod3 --split types --by-layer\n\n"
    "  mechscope probe fit runs/digit-cnn --layers relu1,relu2 --kernel-size 1x4 --kernels 4"
)


class PoolingChoice(Choice, literal=Pooling):
    """How the kernel responses are pooled."""


class SplitChoice(Choice, literal=Split):
    """What is held out."""


@model_command
def probe(
    source: ModelSource,
    layers: Annotated[
        str | None,
        typer.Option(help="Comma-separated layers stacked as image rows (default: every hidden block of a "
                     "ModularMLP)."),
    ] = None,
    kernels: Annotated[int, typer.Option("--kernels", min=1, max=MAX_WIDTH, help="Number of kernels k.")] = 3,
    kernel_size: Annotated[str, typer.Option(help="Kernel rows x columns, e.g. 2x2.")] = "2x2",
    pooling: Annotated[
        PoolingChoice, typer.Option(help="kernels: max over kernels (the article); channels: keep k maps.")
    ] = PoolingChoice("kernels"),
    hidden: Annotated[str, typer.Option(help="Fully connected hidden sizes, comma-separated ('' for none).")] = "30,30",
    dropout: Annotated[float, typer.Option(help="Dropout after each hidden layer.")] = 0.5,
    epochs: Annotated[
        int, typer.Option(min=1, max=MAX_STEPS, help="Most epochs per probe fit (stops earlier at 100% training accuracy).")
    ] = 400,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, max=MAX_DRAWS, help="Number of seeds (splits, initialisations, controls).")
    ] = 3,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=MAX_SEED - MAX_DRAWS, help="First seed; the runs use seed, seed + 1, ...")
    ] = 0,
    test_fraction: Annotated[float, typer.Option(help="Held-out share of the probe's split.")] = 0.1,
    split: Annotated[
        SplitChoice, typer.Option(help="examples (the article) or types: hold out whole distinct inputs.")
    ] = SplitChoice("examples"),
    untrained: Annotated[
        bool, typer.Option("--untrained/--no-untrained", help="Also probe an untrained copy of the model.")
    ] = True,
    by_layer: Annotated[bool, typer.Option("--by-layer", help="Also fit a linear probe per layer and label group.")] = False,
    out: FiguresOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Train a probe that decodes a model's inputs and outputs from its activations (seed 000)."""
    conv = ConvProbe(
        kernel_size=_kernel_size(kernel_size),
        n_kernels=kernels,
        pooling=pooling.value,
        hidden_sizes=_hidden(hidden),
        dropout=_dropout(dropout),
        max_epochs=epochs,
    )
    if not 0.0 < test_fraction < 1.0:
        raise CLIError(f"--test-fraction must lie strictly between 0 and 1; got {test_fraction}.")
    seed_list = tuple(range(seed, seed + seeds))
    ckpt = source.load()
    data = ckpt.data()
    model = ckpt.model
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    common: dict[str, Any] = {
        "probe": conv, "seeds": seed_list, "test_fraction": test_fraction, "split": split.value,
        "use_untrained": untrained, "progress": True,
    }
    with warnings.catch_warnings():
        # The padding note is part of the printed report; no need to repeat it as a warning.
        warnings.filterwarnings("ignore", message="layers have unequal widths")
        run = _probe(ckpt.model, ckpt.model_class, source.label, data, names, common)
        table = None
        if by_layer:
            table = probe_by_layer(
                ckpt.model, data.x_test, run.labels, list(run.image.layers), probe=LinearProbe(), types=run.types,
                seeds=seed_list, split=split.value, use_untrained=untrained, progress=True,
            )

    result = to_json(run)
    if run.report.warnings:  # present only when a split by type holds out too few inputs (see README)
        result["warnings"] = list(run.report.warnings)
    text = _text(run)
    if table is not None:
        result["by_layer"] = to_json(table)
        text += "\n\nlinear probe by layer:\n" + table.format()
    if out is not None:
        paths = save_probe_figures(run, out)
        if table is not None:
            paths.append(save_figure(plot_accuracy_by_layer(table), out / "accuracy_by_layer.png"))
        result["figures"] = [str(p) for p in paths]
        text += "\n\nfigures: " + ", ".join(str(p) for p in paths)
    emit(result, fmt, text)


def _probe(
    model: Any, model_class: str, label: str, data: Any, names: list[str] | None, common: dict[str, Any]
) -> ProbeRun:
    """The article's pipeline for a ModularMLP; for other classifiers, label and output from `--layers`."""
    try:
        if isinstance(model, ModularMLP):
            return probe_modular_mlp(model, data, layers=names, **common)
        if not names:
            raise CLIError(
                f"--layers is required for a {model_class} checkpoint; list its layers with "
                f"`mechscope model layers {label}`."
            )
        if data.task != "classification":
            raise CLIError(f"probing needs a classification checkpoint; {model_class} was trained on {data.task}.")
        return probe_activation_image(model, data.x_test, _classifier_labels(model, data), names, **common)
    except LayerNameError as err:
        raise CLIError(f"--layers: {err}") from None


def _classifier_labels(model: Any, data: Any) -> dict[str, Any]:
    """Labels of a classifier: the true label and the model's own predicted class."""
    model.eval()
    with torch.no_grad():
        outputs = select_output(model(data.x_test)).argmax(dim=1)
    return {"label": data.y_test, "output": outputs}


LOW_SELECTIVITY = 0.05
"""Below this selectivity the text output says the probe may be a lookup table."""


def _text(run: ProbeRun) -> str:
    lines = []
    if run.target_accuracy is not None:
        lines.append(f"probed model: {run.info['model_class']} (held-out accuracy {run.target_accuracy:.4f})")
    lines.append(f"activation image: {len(run.image.layers)} layers x {run.image.images.shape[2]} units "
                 f"({', '.join(run.image.layers)})")
    lines.append(run.report.summary())
    report = run.report
    if report.selectivity < LOW_SELECTIVITY:  # False for NaN (no categorical label group)
        lines.append(
            f"verdict: selectivity {report.selectivity:.4f} is below {LOW_SELECTIVITY}: the probe fits random "
            f"labels given to the {report.n_types} distinct inputs (the control task) about as well as the real "
            "labels, so it can be acting as a lookup table from inputs to answers, and its accuracy then says "
            "nothing about what the network computes. Try --split types (unseen inputs), a smaller probe, or "
            "more distinct inputs."
        )
    return "\n".join(lines)


def _count(text: str) -> bool:
    """True for a plain decimal integer in 1..MAX_WIDTH."""
    return text.isascii() and text.isdigit() and len(text) <= 9 and 0 < int(text) <= MAX_WIDTH


def _kernel_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(_count(p) for p in parts):
        raise CLIError(f"--kernel-size must look like ROWSxCOLS with positive integers, e.g. 2x2; got {text!r}.")
    return int(parts[0]), int(parts[1])


def _hidden(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > MAX_LAYERS or not all(_count(p) for p in parts):
        raise CLIError(f"--hidden must be comma-separated positive integers, e.g. 30,30; got {text!r}.")
    return tuple(int(p) for p in parts)


def _dropout(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise CLIError(f"--dropout must be in [0, 1); got {value}.")
    return value

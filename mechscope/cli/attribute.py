"""`mechscope attribute CHECKPOINT`: attribution maps, with sanity and faithfulness checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from torch import nn

from mechscope.attribution import Attribution, FaithfulnessResult, SanityResult, cascading_randomization, faithfulness
from mechscope.attribution.registry import METHODS, build_method
from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import FiguresOpt, FormatOpt, OutputOpt, output_of
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.errors import LayerNameError, UnsupportedModelError, close_matches
from mechscope.limits import MAX_SEED, MAX_WIDTH
from mechscope.capture import get_layer, select_output
from mechscope.capture.modes import model_device
from mechscope.capture.outputs import OutputSpec

EXAMPLES = (
    "Examples:\n\n  mechscope attribute runs/digit-cnn --method grad-cam --out runs/attribution\n\n"
    "  mechscope attribute runs/digit-cnn --method saliency --method grad-cam --layer relu2 --n 8 --out figs\n\n"
    "  mechscope attribute runs/digit-cnn --sanity --faithfulness --n 200 --format json\n\n"
    f"  Methods: {', '.join(METHODS)} (default: every one the model supports)."
)


@model_command
def attribute(
    source: ModelSource,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method", metavar="NAME", help=f"Method to run; repeat for several. One of: {', '.join(METHODS)}."
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer", metavar="NAME",
            help="Conv layer of the CAM methods (default: the last map after its nonlinearity, e.g. relu3).",
        ),
    ] = None,
    n: Annotated[
        int, typer.Option("--n", min=1, max=MAX_WIDTH, help="Test images to explain (the first N of the test split).")
    ] = 16,
    sanity: Annotated[
        bool, typer.Option("--sanity", help="Cascading parameter-randomisation check (Adebayo et al., 2018).")
    ] = False,
    faithful: Annotated[
        bool, typer.Option("--faithfulness", help="Deletion/insertion curves and areas vs random maps.")
    ] = False,
    out: FiguresOpt = None,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, max=MAX_SEED,
                     help="Seeds the re-initialisation (--sanity) and the random maps (--faithfulness)."),
    ] = 0,
    output: OutputOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Explain a classifier's predictions with attribution maps and check that the maps mean something."""
    names = _method_names(method)
    ckpt = source.load()
    if layer is not None:
        _check_layer(ckpt.model, layer)
    x, labels = _test_images(ckpt.data(), source.label, n)
    chosen = output_of(output)
    methods, skipped = _build(names, ckpt.model, layer, x, explicit=method is not None, output=chosen)
    labels_of = {name: m.label for name, m in methods.items()}
    labelled = {labels_of[name]: m for name, m in methods.items()}
    used_layer = next((getattr(m, "layer") for m in methods.values() if m.uses_layer), None)
    with torch.no_grad():
        predicted = select_output(ckpt.model.eval()(x.to(model_device(ckpt.model))), chosen).argmax(dim=1).cpu()
    result: dict[str, Any] = {"checkpoint": source.label, "layer": used_layer, "n_images": int(x.shape[0])}
    faith_result: FaithfulnessResult | None = None
    sanity_result: SanityResult | None = None
    if faithful:
        faith_result = faithfulness(ckpt.model, labelled, x, predicted, seed=seed, output=chosen)
    if sanity:
        sanity_result = cascading_randomization(ckpt.model, labelled, x, predicted, seed=seed, output=chosen)
    figures: list[str] = []
    if out is not None:
        figures = _write_figures(Path(out), labelled, x, labels, predicted, sanity_result, faith_result)
    result.update(
        {
            "methods": _rows(labels_of, faith_result, sanity_result),
            "random_baseline": None if faith_result is None else faith_result.random_baseline,
            "sanity_steps": None if sanity_result is None else sanity_result.steps,
            "figures": figures,
            "skipped": skipped,
        }
    )
    emit(result, fmt, _text(result))


def _check_layer(model: nn.Module, layer: str) -> None:
    """Raise a CLIError naming --layer when `model` has no such layer."""
    try:
        get_layer(model, layer)
    except LayerNameError as err:
        raise CLIError(f"--layer: {err}") from None


def _test_images(bundle: Any, label: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` test images (batch, channel, height, width) and their labels; other inputs are a CLIError."""
    x, labels = bundle.x_test[:n], bundle.y_test[:n]
    if x.dim() != 4:
        raise CLIError(
            f"{label} was trained on inputs of shape {tuple(x.shape[1:])}; `attribute` explains image "
            "classifiers (inputs (channel, height, width)). Train one with `mechscope model train digit-cnn`."
        )
    return x, labels


def _rows(
    labels_of: dict[str, str], faith_result: FaithfulnessResult | None, sanity_result: SanityResult | None
) -> dict[str, dict[str, Any]]:
    """One row per method: its deletion and insertion AUCs and sanity scores (None for checks not run)."""
    rows: dict[str, dict[str, Any]] = {
        name: {"deletion_auc": None, "insertion_auc": None, "sanity_spearman": None, "passes_sanity": None}
        for name in labels_of
    }
    for name, label in labels_of.items():
        if faith_result is not None:
            rows[name]["deletion_auc"] = faith_result.deletion_auc[label]
            rows[name]["insertion_auc"] = faith_result.insertion_auc[label]
        if sanity_result is not None:
            rows[name]["sanity_spearman"] = sanity_result.spearman[label]
            rows[name]["passes_sanity"] = sanity_result.passes[label]
    return rows


def _write_figures(
    out: Path,
    methods: dict[str, Attribution],
    x: torch.Tensor,
    labels: torch.Tensor,
    predicted: torch.Tensor,
    sanity_result: SanityResult | None,
    faith_result: FaithfulnessResult | None,
) -> list[str]:
    # matplotlib loads only when figures are asked for
    from mechscope.plots import save_figure
    from mechscope.plots.attribution import plot_attribution_grid, plot_perturbation_curves, plot_sanity_curves

    shown = min(x.shape[0], 16)
    maps = {label: method.attribute(x[:shown], predicted[:shown]) for label, method in methods.items()}
    row_labels = [f"label {int(y)}\npredicted {int(p)}" for y, p in zip(labels[:shown], predicted[:shown])]
    grid = plot_attribution_grid(x[:shown], maps, row_labels=row_labels,
                                 title="Attribution maps for the predicted class")
    paths = [save_figure(grid, out / "attribution_maps.png")]
    if faith_result is not None:
        paths.append(save_figure(plot_perturbation_curves(faith_result), out / "faithfulness.png"))
    if sanity_result is not None:
        paths.append(save_figure(plot_sanity_curves(sanity_result), out / "sanity.png"))
    return [str(path) for path in paths]


def _method_names(requested: list[str] | None) -> list[str]:
    if not requested:
        return list(METHODS)
    for name in requested:
        if name not in METHODS:
            hint = close_matches(name, METHODS)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise CLIError(f"--method {name!r} is unknown; choose from {', '.join(METHODS)}.{did_you_mean}")
    return list(dict.fromkeys(requested))


def _build(
    names: list[str], model: nn.Module, layer: str | None, x: torch.Tensor, *, explicit: bool, output: OutputSpec
) -> tuple[dict[str, Attribution], dict[str, str]]:
    """Construct the methods; without --method, skip (and report) those the model does not fit."""
    methods: dict[str, Attribution] = {}
    skipped: dict[str, str] = {}
    for name in names:
        method: Attribution | None = None
        try:
            method = build_method(name, model, layer=layer, output=output)
            method.attribute(x[:1])  # a model the method does not fit (CAM without GAP) fails here
        except LayerNameError as err:
            raise CLIError(f"--layer: {err}") from err
        except UnsupportedModelError as err:
            if layer is not None and (method is None or method.uses_layer):
                raise CLIError(f"--layer {layer!r} does not suit {name}: {err}") from err
            if explicit:
                raise
            skipped[name] = str(err)
            continue
        methods[name] = method
    if not methods:
        raise UnsupportedModelError(f"No attribution method fits this model: {skipped}")
    return methods, skipped


def _text(result: dict[str, Any]) -> str:
    layer = f", layer {result['layer']}" if result["layer"] else ""
    lines = [f"{result['checkpoint']}: {result['n_images']} test images{layer}"]
    width = max(len(name) for name in result["methods"]) + 2
    lines.append(f"{'method':<{width}}{'deletion AUC':>13}{'insertion AUC':>15}  sanity Spearman by step")
    for name, row in result["methods"].items():
        deletion = "-" if row["deletion_auc"] is None else f"{row['deletion_auc']:.3f}"
        insertion = "-" if row["insertion_auc"] is None else f"{row['insertion_auc']:.3f}"
        sanity = "-"
        if row["sanity_spearman"] is not None:
            verdict = "pass" if row["passes_sanity"] else "FAIL"
            values = row["sanity_spearman"]
            sanity = " ".join(f"{v:+.2f}" for v in values) + f"  mean {sum(values) / len(values):+.2f} {verdict}"
        lines.append(f"{name:<{width}}{deletion:>13}{insertion:>15}  {sanity}")
    if result["random_baseline"] is not None:
        base = result["random_baseline"]
        lines.append(f"{'random map':<{width}}{base['deletion_auc']:>13.3f}{base['insertion_auc']:>15.3f}")
    if result["sanity_steps"]:
        lines.append(f"sanity steps (layers randomised, cumulative): {', '.join(result['sanity_steps'])}")
    for name, why in result["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    for path in result["figures"]:
        lines.append(f"Figure: {path}")
    return "\n".join(lines)

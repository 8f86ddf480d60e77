"""`mechscope units render CHECKPOINT --layer NAME`: render what units want, with dataset evidence."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, cast

import torch
import typer
from torch import nn

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import OutputOpt, output_of, FormatOpt, SeedOpt, figures_folder
from mechscope.cli._output import OutputFormat, emit
from mechscope.capture import describe_layers
from mechscope.cli.errors import CLIError
from mechscope.errors import ConfigError, LayerNameError
from mechscope.featurevis import (
    InputSpace,
    ObjectiveKind,
    RenderConfig,
    Visualization,
    count_units,
    unit_objective,
    visualize,
)
from mechscope.limits import MAX_RESTARTS, MAX_STEPS, check_memory
from mechscope.plots import save_figure, write_image_pngs
from mechscope.plots.featurevis import plot_class_pairs, plot_layer_grid

EXAMPLES = (
    "Examples:\n\n  mechscope units render runs/digit-cnn --layer relu2\n\n"
    "  mechscope units render runs/digit-cnn --layer relu3 --units 0,3,7 --steps 512 --out fv\n\n"
    "  mechscope units render runs/digit-cnn --objective logit --format json\n\n"
    "  mechscope units render runs/digit-cnn --layer relu1 --objective layer"
)


class ObjectiveChoice(str, Enum):
    """What each rendered image maximises."""

    channel = "channel"
    neuron = "neuron"
    layer = "layer"
    logit = "logit"
    prob = "prob"


class TransformChoice(str, Enum):
    """Random transformations during rendering."""

    none = "none"
    standard = "standard"


@model_command
def featurevis(
    source: ModelSource,
    layer_name: Annotated[
        str | None,
        typer.Option("--layer", help="Layer to visualise (see `mechscope layers`); logit/prob default to the output."),
    ] = None,
    units: Annotated[str, typer.Option("--units", help="all, or comma-separated indices such as 0,3,7.")] = "all",
    objective: Annotated[
        ObjectiveChoice, typer.Option("--objective", help="channel, neuron (centre), layer (mean), logit or prob.")
    ] = ObjectiveChoice.channel,
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=MAX_STEPS, help="Optimisation steps (all units render together).")
    ] = 256,
    restarts: Annotated[
        int,
        typer.Option("--restarts", min=1, max=MAX_RESTARTS, help="Starts per unit in the same batch; the best one is kept."),
    ] = 2,
    out: Annotated[
        Path, typer.Option("--out", callback=figures_folder, help="Folder for the grid PNG and one PNG per unit.")
    ] = Path("featurevis"),
    transforms: Annotated[
        TransformChoice,
        typer.Option("--transforms", help="none, or standard (pad, jitter, scale, rotate): smoother, lower peaks."),
    ] = TransformChoice.none,
    seed: SeedOpt = 0,
    output: OutputOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Render the input each unit of a layer wants most, and compare it with the best dataset image."""
    kind = cast(ObjectiveKind, objective.value)
    if layer_name is None and kind not in ("logit", "prob"):
        raise CLIError(f"--layer is required for --objective {kind}; list names with `mechscope model layers CHECKPOINT`.")
    ckpt = source.load()
    bundle = ckpt.data()
    data = bundle.all_inputs()
    if data.dim() != 4 or not data.is_floating_point():
        raise CLIError(
            f"featurevis needs an image model; {ckpt.model_class} takes inputs of shape {tuple(data.shape[1:])}."
        )
    try:
        n_units = count_units(ckpt.model, layer_name, data[:2], output=output_of(output))
    except LayerNameError as err:
        raise CLIError(f"--layer: {err}") from None
    selected = _parse_units(units, n_units, kind, layer_name)
    check_memory(len(selected) * restarts * _bytes_per_render(ckpt.model, data[:1]),
                 f"rendering {len(selected)} units x {restarts} restarts (--units, --restarts)")
    space = InputSpace.from_data(data)
    config = RenderConfig(steps=steps, seed=seed, restarts=restarts)

    def run(which: ObjectiveKind) -> Visualization:
        try:
            return visualize(
                ckpt.model,
                unit_objective(which, layer_name, selected, output=output_of(output)),
                data,
                space=space,
                config=config,
                transforms="standard" if transforms is TransformChoice.standard else None,
            )
        except ConfigError as err:
            raise CLIError(str(err)) from None

    vis = run(kind)
    stem = f"{layer_name or 'output'}_{kind}"
    images, ev = vis.result.images, vis.evidence
    value_range = (float(data.min()), float(data.max()))
    label = {"logit": "class", "prob": "class", "layer": "row"}.get(kind, "ch" if kind == "channel" else "unit")
    figure = plot_layer_grid(
        images,
        title=f"{layer_name or 'model output'}: {kind} objective, {steps} steps",
        evidence=ev,
        value_range=value_range,
        unit_label=label,
    )
    grid = save_figure(figure, out / f"{stem}.png")
    paths = write_image_pngs(images, out / stem, [f"unit_{unit:03d}.png" for unit in ev.units],
                             value_range=value_range, progress=True)
    rows = [{**unit_result, "image": str(path)} for unit_result, path in zip(vis.to_dict()["units"], paths)]
    summary = vis.to_dict()
    result: dict[str, Any] = {
        "checkpoint": source.label,
        "layer": layer_name,
        "objective": kind,
        "description": ev.description,
        "steps": steps,
        "restarts": restarts,
        "transforms": transforms.value,
        "seed": seed,
        "seconds": summary["seconds"],
        "fraction_reached": summary["fraction_reached"],
        "n_never_active": summary["n_never_active"],
        "grid": str(grid),
        "units": rows,
    }
    if kind in ("logit", "prob"):  # seed 003: pre- and post-softmax pictures differ, so show both
        other = run("prob" if kind == "logit" else "logit")
        logits, probs = (vis, other) if kind == "logit" else (other, vis)
        names = list(bundle.class_names) if layer_name is None and bundle.class_names else None
        pairs = plot_class_pairs(
            logits.result.images,
            probs.result.images,
            class_names=[names[u] if names else str(u) for u in selected],
            logit_evidence=logits.evidence,
            prob_evidence=probs.evidence,
            value_range=value_range,
        )
        result["pairs"] = str(save_figure(pairs, out / f"{layer_name or 'output'}_logit_vs_prob.png"))
    emit(result, fmt, _text(result))


def _parse_units(text: str, n_units: int, kind: str, layer_name: str | None) -> list[int]:
    where = f"layer {layer_name!r}" if layer_name else "the model output"
    if text.strip().lower() == "all":
        return [0] if kind == "layer" else list(range(n_units))
    if kind == "layer":
        raise CLIError("--units does not apply to --objective layer (it renders the whole layer); drop --units.")
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CLIError(f"--units must be 'all' or comma-separated integers such as 0,3,7; got {text!r}.") from None
    if not values:
        raise CLIError(f"--units must be 'all' or comma-separated integers such as 0,3,7; got {text!r}.")
    bad = [v for v in values if not 0 <= v < n_units]
    if bad:
        raise CLIError(
            f"--units {bad[0]} is out of range: {where} has {n_units} units along its channel axis "
            f"(0-{n_units - 1})."
        )
    return values


def _text(result: dict[str, Any]) -> str:
    fraction = result["fraction_reached"]
    share = "n/a" if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)) else f"{fraction:.0%}"
    lines = [
        f"{result['description']}: {result['steps']} steps in {result['seconds']:.1f}s; "
        f"{share} of units reach their best dataset activation"
        + (f" ({result['n_never_active']} never active on the data)" if result["n_never_active"] else ""),
        f"{'unit':>5} {'activation':>11} {'dataset max':>12} {'ratio':>7}",
    ]
    for row in result["units"]:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"{row['unit']:>5} {row['activation']:>11.4g} {row['dataset_max']:>12.4g} {ratio:>7}")
    lines.append(f"grid: {result['grid']}")
    if "pairs" in result:
        lines.append(f"logit vs probability: {result['pairs']}")
    return "\n".join(lines)


def _bytes_per_render(model: nn.Module, example: torch.Tensor) -> int:
    """Memory one rendered image needs: every layer's output, kept for the backward pass, and its gradient."""
    outputs = sum(math.prod(row.output_shape) for row in describe_layers(model, example) if row.output_shape)
    return 2 * 4 * (example[0].numel() + outputs)

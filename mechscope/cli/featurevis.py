"""`mechscope units render CHECKPOINT --layer NAME`: render what units want, with dataset evidence."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import torch
import typer
from torch import nn

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import Choice, OutputOpt, output_of, FormatOpt, SeedOpt, figures_folder
from mechscope.cli._output import OutputFormat, emit
from mechscope.capture import describe_layers
from mechscope.capture.outputs import OutputSpec
from mechscope.cli.errors import CLIError
from mechscope.errors import ConfigError, LayerNameError
from mechscope.featurevis import InputSpace, RenderConfig, visualize
from mechscope.featurevis.visualize import ObjectiveKind, TransformPreset, Visualization, count_units, unit_objective
from mechscope.limits import MAX_RESTARTS, MAX_STEPS, check_memory
from mechscope.plots import save_figure, write_image_pngs
from mechscope.plots.featurevis import plot_class_pairs, plot_layer_grid
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope units render runs/digit-cnn --layer relu2\n\n"
    "  mechscope units render runs/digit-cnn --layer relu3 --units 0,3,7 --steps 512 --out fv\n\n"
    "  mechscope units render runs/digit-cnn --objective logit --format json\n\n"
    "  mechscope units render runs/digit-cnn --layer relu1 --objective layer"
)


class ObjectiveChoice(Choice, literal=ObjectiveKind):
    """What each rendered image maximises."""


class TransformChoice(Choice, literal=TransformPreset):
    """Random transformations during rendering."""


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
    ] = ObjectiveChoice("channel"),
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
    ] = TransformChoice("none"),
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
    selected = _selected_units(ckpt.model, data, units, kind, layer_name, output_of(output))
    check_memory(len(selected) * restarts * _bytes_per_render(ckpt.model, data[:1]),
                 f"rendering {len(selected)} units x {restarts} restarts (--units, --restarts)")
    render = _Render(ckpt.model, data, layer_name, selected, output_of(output), InputSpace.from_data(data),
                     RenderConfig(steps=steps, seed=seed, restarts=restarts),
                     cast(TransformPreset, transforms.value))
    vis = render(kind)
    value_range = (float(data.min()), float(data.max()))
    grid, paths = _save_unit_images(vis, out, kind, layer_name, steps=steps, value_range=value_range)
    summary = to_json(vis)
    rows = [{**unit_result, "image": str(path)} for unit_result, path in zip(summary["units"], paths)]
    result: dict[str, Any] = {
        "checkpoint": source.label,
        "layer": layer_name,
        "objective": kind,
        "description": vis.evidence.description,
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
        result["pairs"] = str(_save_pairs(render, vis, kind, bundle.class_names, out, value_range=value_range))
    emit(result, fmt, _text(result))


def _selected_units(
    model: nn.Module, data: torch.Tensor, text: str, kind: str, layer_name: str | None, output: OutputSpec
) -> list[int]:
    """The units `--units` selects, checked against the units the layer (or output) has."""
    try:
        n_units = count_units(model, layer_name, data[:2], output=output)
    except LayerNameError as err:
        raise CLIError(f"--layer: {err}") from None
    return _parse_units(text, n_units, kind, layer_name)


@dataclass(frozen=True)
class _Render:
    """Render the selected units of a layer (or the output) for one objective kind."""

    model: nn.Module
    data: torch.Tensor  # (batch, channel, height, width) inputs: the input space and the dataset evidence
    layer_name: str | None  # None: the model output (logit and prob objectives)
    units: list[int]  # the units rendered
    output: OutputSpec  # which model output logit and prob objectives read
    space: InputSpace  # where rendered inputs live
    config: RenderConfig  # steps, seed and restarts
    transforms: TransformPreset  # random transformations during rendering

    def __call__(self, which: ObjectiveKind) -> Visualization:
        """The visualisation for objective kind `which`; a setting `visualize` refuses is a CLIError."""
        try:
            return visualize(
                self.model,
                unit_objective(which, self.layer_name, self.units, output=self.output),
                self.data,
                space=self.space,
                config=self.config,
                transforms=self.transforms,
            )
        except ConfigError as err:
            raise CLIError(str(err)) from None


def _save_unit_images(
    vis: Visualization, out: Path, kind: str, layer_name: str | None, *, steps: int,
    value_range: tuple[float, float],
) -> tuple[Path, list[Path]]:
    """Write the grid of all units (with their dataset evidence) and one PNG per unit; return their paths."""
    stem = f"{layer_name or 'output'}_{kind}"
    images, ev = vis.result.images, vis.evidence
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
    return grid, paths


def _save_pairs(
    render: _Render, vis: Visualization, kind: str, class_names: tuple[str, ...] | None, out: Path, *,
    value_range: tuple[float, float],
) -> Path:
    """Render the other of logit/prob and write both side by side per class; return the figure's path."""
    other = render("prob" if kind == "logit" else "logit")
    logits, probs = (vis, other) if kind == "logit" else (other, vis)
    names = list(class_names) if render.layer_name is None and class_names else None
    pairs = plot_class_pairs(
        logits.result.images,
        probs.result.images,
        class_names=[names[u] if names else str(u) for u in render.units],
        logit_evidence=logits.evidence,
        prob_evidence=probs.evidence,
        value_range=value_range,
    )
    return save_figure(pairs, out / f"{render.layer_name or 'output'}_logit_vs_prob.png")


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

"""`mechscope formula CHECKPOINT`: the formula(s) a piecewise-linear network computes, verified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from torch import Tensor

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import DataPartChoice, split_of, FiguresOpt, FormatOpt
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.limits import MAX_WIDTH
from mechscope.data import DataBundle
from mechscope.symbolic import Transforms, linearize, read_formula
from mechscope.symbolic.transforms import TRANSFORM_NAMES
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope formula runs/tiny-relu-sum\n\n"
    "  mechscope formula runs/tiny-relu-product --format json --out runs/formula-product\n\n"
    "  mechscope formula runs/tiny-relu-weighted --split train --tolerance 0.005\n\n"
    "  mechscope formula runs/modular-mlp --local"
)



@model_command
def formula(
    source: ModelSource,
    split: Annotated[
        DataPartChoice, typer.Option("--split", help="Points to read the formula on: the test or train split, or all.")
    ] = DataPartChoice("test"),
    input_transform: Annotated[
        str | None,
        typer.Option("--input-transform", help="identity, log or exp; default: what the data declares."),
    ] = None,
    output_transform: Annotated[
        str | None,
        typer.Option("--output-transform", help="identity, log or exp; default: what the data declares."),
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest change simplification may make to a displayed parameter.")
    ] = 0.01,
    relation_tolerance: Annotated[
        float, typer.Option("--relation-tolerance", help="Absolute tolerance of the article's weight relations.")
    ] = 0.01,
    max_regions: Annotated[
        int, typer.Option("--max-regions", min=1, max=MAX_WIDTH, help="Regions to print formulas for.")
    ] = 10,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Linearize at the data mean instead (any differentiable model); labelled local, never global.",
        ),
    ] = False,
    out: FiguresOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Read the formula a piecewise-linear network computes, with coverage and verified errors."""
    if not tolerance >= 0:
        raise CLIError(f"--tolerance must be >= 0; got {tolerance}.")
    if not relation_tolerance >= 0:
        raise CLIError(f"--relation-tolerance must be >= 0; got {relation_tolerance}.")
    chosen_input = _transform(input_transform, "--input-transform")
    chosen_output = _transform(output_transform, "--output-transform")
    if local and (chosen_input or chosen_output):
        raise CLIError("--input-transform and --output-transform do not apply to --local (a tangent of the network "
                       "as it is); drop them, or drop --local.")
    ckpt = source.load()
    bundle = ckpt.data()
    if local:
        x = split_of(bundle, split)[0]
        lin = linearize(ckpt.model, x.mean(dim=0, keepdim=True), data=x)
        lines = [f"{lin.label[0].upper()}{lin.label[1:]}.", *lin.formulas()]
        for near, everywhere in zip(lin.near_max_abs_error.tolist(), lin.data_max_abs_error.tolist()):
            lines.append(
                f"max |tangent - network|: {near:.3g} on the nearest "
                f"{lin.near_fraction:.0%} of the data, {everywhere:.3g} on all of it"
            )
        emit({"mode": "local_linearization", **to_json(lin)}, fmt, "\n".join(lines))
        return
    declared = Transforms.from_extras(bundle.extras)
    transforms = Transforms(
        input=chosen_input or declared.input,
        output=chosen_output or declared.output,
    )
    report = read_formula(
        ckpt.model,
        bundle,
        split=split.value,
        transforms=transforms,
        tolerance=tolerance,
        relation_tolerance=relation_tolerance,
        max_regions=max_regions,
    )
    result = {"checkpoint": source.label, "split": split.value, **to_json(report)}
    text = f"{source.label} on {split.value} data ({report.region_map.n_points} points)\n" + report.to_text()
    if out is not None:
        from mechscope.plots import save_figure  # matplotlib loads only when a figure is asked for
        from mechscope.plots.formula import plot_formula

        figure = save_figure(plot_formula(report), Path(out) / "formula.png")
        result["figure"] = str(figure)
        text += f"\nFigure: {figure}"
    emit(result, fmt, text)


def _transform(value: str | None, flag: str) -> str | None:
    if value is not None and value not in TRANSFORM_NAMES:
        raise CLIError(f"{flag} must be one of {', '.join(TRANSFORM_NAMES)}; got {value!r}.")
    return value

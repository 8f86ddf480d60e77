"""`mechscope circuits CHECKPOINT`: each class's main detector channels, their wiring, and an ablation check."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from mechscope.capture import get_layer
from mechscope.circuits import (
    ClassCircuits,
    DepthStatistics,
    activation_maps,
    class_circuits,
    conv_kernels,
    depth_statistics,
)
from mechscope.circuits.layers import conv_layers
from mechscope.circuits.ablation import Mode
from mechscope.circuits.contributions import Method
from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import Choice, OutputOpt, output_of, FiguresOpt, FormatOpt
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.limits import MAX_DRAWS, MAX_SEED, MAX_WIDTH
from mechscope.data import DataBundle
from mechscope.errors import LayerNameError
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope circuits runs/digit-cnn-gap\n\n"
    "  mechscope circuits runs/digit-cnn-gap --format json --out figs/circuits\n\n"
    "  mechscope circuits runs/digit-cnn --layer relu2 --ablation mean --n-random 50"
)


class MethodChoice(Choice, literal=Method):
    """How channel contributions are measured."""


class AblationChoice(Choice, literal=Mode):
    """What an ablated channel is replaced by."""


@model_command
def circuits(
    source: ModelSource,
    layer: Annotated[
        str | None,
        typer.Option("--layer", help="Detector layer (default: the last map after its nonlinearity, e.g. relu3)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=MAX_WIDTH, help="Detector channels per class.")] = 3,
    method: Annotated[
        MethodChoice,
        typer.Option("--method", help="Contributions: exact for a GAP head, gradient x activation, or auto."),
    ] = MethodChoice("auto"),
    ablation: Annotated[
        AblationChoice, typer.Option("--ablation", help="Replace ablated channels by zero or their training mean.")
    ] = AblationChoice("zero"),
    n_random: Annotated[
        int, typer.Option("--n-random", min=1, max=MAX_DRAWS, help="Random channel sets drawn per class.")
    ] = 20,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the random channel draws.")] = 0,
    out: FiguresOpt = None,
    output: OutputOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Find each class's top detector channels, the conv wiring into them, and test them by ablation."""
    ckpt = source.load()
    if layer is not None:
        try:
            get_layer(ckpt.model, layer)
        except LayerNameError as err:
            raise CLIError(f"--layer: {err}") from None
    bundle = ckpt.data()
    if bundle.task != "classification":
        raise CLIError(f"circuits needs a classifier; {ckpt.model_class} was trained on {bundle.task} data.")
    found = class_circuits(ckpt.model, bundle, layer=layer, top=top, method=method.value, mode=ablation.value,
                           n_random=n_random, seed=seed, output=output_of(output))
    depth = depth_statistics(ckpt.model, bundle.x_test) if conv_layers(ckpt.model) else None
    result: dict[str, Any] = {"checkpoint": source.label, **to_json(found)}
    if depth is not None:
        result["depth"] = to_json(depth)
    if out is not None:
        result["figures"] = [str(p) for p in _figures(ckpt.model, bundle, found, depth, out)]
    emit(result, fmt, _text(found, depth, result))


def _figures(
    model: Any, bundle: DataBundle, found: ClassCircuits, depth: DepthStatistics | None, out: Path
) -> list[Path]:
    from mechscope.plots import save_figure
    from mechscope.plots.circuits import (
        plot_activation_maps,
        plot_causal_check,
        plot_class_circuit,
        plot_class_circuits,
        plot_connections,
        plot_conv_kernels,
        plot_depth_statistics,
    )

    names = found.contributions.class_names
    written = [
        save_figure(plot_class_circuits(found.contributions, found.class_mean_inputs), out / "circuits.png"),
        save_figure(plot_causal_check(found.causal, class_names=names), out / "ablation.png"),
    ]
    for c, name in enumerate(names):
        written.append(save_figure(plot_class_circuit(found, c), out / f"circuit_class_{name}.png"))
    for pair in found.connections:
        written.append(save_figure(plot_connections(pair), out / f"connections_{pair.source}_{pair.target}.png"))
    if depth is not None:
        written.append(save_figure(plot_depth_statistics(depth), out / "depth_statistics.png"))
        maps = activation_maps(model, bundle.x_test[:1])
        written.append(save_figure(plot_activation_maps(maps), out / "activations.png"))
        first = conv_kernels(model)
        written.append(save_figure(plot_conv_kernels(first), out / f"kernels_{first.layer}.png"))
    return written


def _text(found: ClassCircuits, depth: DepthStatistics | None, result: dict[str, Any]) -> str:
    contributions, check = found.contributions, found.causal
    how = "head weight x mean activation (exact)" if contributions.method == "gap" else "gradient x activation"
    lines = [f"Top {contributions.top_channels.shape[1]} detectors per class in {contributions.layer} ({how}):"]
    for name, entry in result["classes"].items():
        channels = ", ".join(f"{ch} ({v:+.3g})" for ch, v in zip(entry["top_channels"], entry["contributions"]))
        lines.append(f"  class {name}: {channels} | ablation drop {entry['ablation_drop']:.0%}, "
                     f"random {entry['random_ablation_drop']:.1%}")
    ratio = f"{check.ratio:.3g}x" if math.isfinite(check.ratio) else "undefined: random channels cost nothing"
    lines.append(
        f"{check.mode} ablation on the test split, mean over classes: detectors cost "
        f"{float(check.top_drop.mean()):.1%} accuracy, as many random channels {float(check.random_drop.mean()):.1%} "
        f"(ratio {ratio}); {check.classes_hurt_more} of {len(result['classes'])} classes hurt more by their own "
        f"detectors; own-logit drop {float(check.top_logit_drop.mean()):.3g} vs "
        f"{float(check.random_logit_drop.mean()):.3g}"
    )
    pair = found.feeding()
    if pair is not None:
        lines.append(f"Strongest inbound {pair.source} channels (kernel L2) of each class's first detector:")
        for c, name in enumerate(contributions.class_names):
            d = int(contributions.top_channels[c, 0])
            inbound = ", ".join(
                f"{s} ({float(pair.l2[d, s]):.2f}, {'+' if float(pair.signed_sum[d, s]) >= 0 else '-'})"
                for s in pair.top_inbound[d].tolist()
            )
            lines.append(f"  class {name}, {pair.target} ch {d}: {inbound}")
    if depth is not None:
        lines.append(depth.verdict())
    for path in result.get("figures", []):
        lines.append(f"wrote {path}")
    return "\n".join(lines)

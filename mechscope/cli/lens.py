"""`mechscope lens CHECKPOINT`: the logit lens and the direct logit attribution of a residual-stream model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import FiguresOpt, FormatOpt
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.lens import LogitAttribution, LogitLens, direct_logit_attribution, logit_lens
from mechscope.lens.unembed import find_readout, readout, residual_layers, stream_components
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope lens runs/grokking-transformer-p59-r1\n\n"
    "  mechscope lens runs/grokking-transformer-p59-r1 --format json --out figures\n\n"
    "  mechscope lens --model gpt.py:make --data npz:tokens.npz --unembed lm_head --final-norm transformer.ln_f"
)


@model_command
def lens(
    source: ModelSource,
    layer: Annotated[list[str] | None, typer.Option(
        help="Residual-stream layer, shallow to deep (repeatable); default: the input and every block's output.")]
    = None,
    unembed: Annotated[str | None, typer.Option(help="The unembedding module (default: found from the model).")]
    = None,
    final_norm: Annotated[str | None, typer.Option(help="The final norm before it (default: found from the model).")]
    = None,
    n: Annotated[int, typer.Option(min=1, max=4096, help="Held-out examples read.")] = 64,
    out: FiguresOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """What the residual stream predicts at each depth (logit lens) and which heads and MLPs write the answer."""
    ckpt = source.load()
    model = ckpt.model
    data = ckpt.data()
    x, labels = data.x_test[:n], data.y_test[:n].long()
    found = readout(model, unembed, final_norm) if unembed is not None else find_readout(model)
    layers = layer or residual_layers(model)
    result = logit_lens(model, x, layers, unembed=found.unembed_name, final_norm=found.norm_name,
                        answer=labels if data.task == "classification" else None)
    payload: dict[str, Any] = {"lens": to_json(_lens_json(result)),
                               "unembed": found.unembed_name, "final_norm": found.norm_name}
    components = stream_components(model)
    dla = None
    if components and data.task == "classification":
        dla = direct_logit_attribution(model, x, components, unembed=found.unembed_name,
                                       final_norm=found.norm_name, answer=labels)
        payload["attribution"] = {"labels": dla.labels, "mean": dla.mean,
                                  "max_remainder": float(dla.remainder.abs().max())}
    if out is not None:
        payload["figures"] = [str(p) for p in _figures(result, dla, out)]
    emit(payload, fmt, _text(result, dla, payload))


def _lens_json(result: LogitLens) -> dict[str, Any]:
    return {"layers": result.layers, "mean_rank": result.mean_rank, "mean_probability": result.mean_probability}


def _figures(result: LogitLens, dla: LogitAttribution | None, out: Path) -> list[Path]:
    from mechscope.plots import save_figure
    from mechscope.plots.patching import plot_logit_attribution, plot_logit_lens

    paths = [save_figure(plot_logit_lens(result), out / "logit-lens.png")]
    if dla is not None:
        paths.append(save_figure(plot_logit_attribution(dla), out / "logit-attribution.png"))
    return paths


def _text(result: LogitLens, dla: LogitAttribution | None, payload: dict[str, Any]) -> str:
    if not result.layers:
        raise CLIError("no layers to read")
    width = max(len(name) for name in result.layers)
    lines = [f"logit lens through {payload['unembed']}"
             + (f" after {payload['final_norm']}" if payload["final_norm"] else "")
             + ": mean rank (probability) of the answer at the last position"]
    for name, ranks, probs in zip(result.layers, result.mean_rank, result.mean_probability, strict=True):
        lines.append(f"  {name:<{width}}  rank {ranks[-1]:8.2f}   p {probs[-1]:.3f}")
    if dla is not None:
        lines.append("direct logit attribution of the answer (mean over examples):")
        lines += [f"  {label:<28} {value:+.3f}" for label, value in dla.mean.items()]
        lines.append(f"  (logit - sum of parts: at most {payload['attribution']['max_remainder']:.2g})")
    lines += [f"wrote {p}" for p in payload.get("figures", [])]
    return "\n".join(lines)

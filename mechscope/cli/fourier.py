"""`mechscope fourier CHECKPOINT`: find the Fourier algorithm in a modular-addition model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mechscope.cli._model import ModelSource, model_command
from mechscope.cli._options import FiguresOpt, FormatOpt
from mechscope.cli._output import OutputFormat, emit
from mechscope.cli.errors import CLIError
from mechscope.fourier import FourierAnalysis, analyze_modular
from mechscope.serialize import to_json

EXAMPLES = (
    "Examples:\n\n  mechscope fourier runs/grokking-mlp-p59\n\n"
    "  mechscope fourier runs/grokking-mlp-p59 --format json --out runs/grokking-mlp-p59/figures\n\n"
    "  mechscope fourier runs/modular-mlp-mod2 --share 0.95"
)


@model_command
def fourier(
    source: ModelSource,
    share: Annotated[float, typer.Option(help="Energy share of the embedding the key frequencies must hold.")] = 0.9,
    threshold: Annotated[float, typer.Option(help="Neuron cluster threshold (0.85 as published).")] = 0.85,
    layer: Annotated[str | None, typer.Option(help="Hidden layer for neuron clusters (default: act or hidden.0).")]
    = None,
    out: FiguresOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Key frequencies, restricted/excluded loss, ablations and clock-vs-pizza of a modular model."""
    if not 0.0 < share <= 1.0:
        raise CLIError(f"--share must be in (0, 1]; got {share}. Try --share 0.9.")
    if not 0.0 < threshold <= 1.0:
        raise CLIError(f"--threshold must be in (0, 1]; got {threshold}. The published value is 0.85.")
    ckpt = source.load()
    data = ckpt.data() if ckpt.data_spec is not None else None
    result = analyze_modular(ckpt.model, data=data, share=share, threshold=threshold, layer=layer)
    payload = to_json(result)
    if out is not None:
        payload["figures"] = [str(p) for p in _figures(result, ckpt.history, ckpt.extra, out)]
    emit(payload, fmt, _text(result, payload))


def _figures(result: FourierAnalysis, history: list[dict[str, Any]], extra: dict[str, Any], out: Path) -> list[Path]:
    from mechscope.plots import save_figure
    from mechscope.plots.fourier import (
        plot_frequency_spectrum,
        plot_logit_spectrum_2d,
        plot_neuron_clusters,
        plot_progress,
    )

    keys = result.key_frequencies
    spectra = {"embedding": result.embedding, "logits along the output class": result.output}
    paths = [
        save_figure(plot_frequency_spectrum(spectra, key_frequencies=keys), out / "spectrum.png"),
        save_figure(plot_logit_spectrum_2d(result.logits_2d), out / "logits_2d.png"),
    ]
    if result.neurons is not None:
        paths.append(save_figure(plot_neuron_clusters(result.neurons), out / "neurons.png"))
    if history and "test_loss" in history[0]:
        progress = extra.get("progress") or []
        figure = plot_progress(history, progress=progress, key_frequencies=extra.get("key_frequencies", keys))
        paths.append(save_figure(figure, out / "progress.png"))
    return paths


def _text(result: FourierAnalysis, payload: dict[str, Any]) -> str:
    top = result.embedding.top_k_energy(len(result.key_frequencies) or 1)
    held = top[max(top)] if top else 0.0
    lines = [
        f"modulus p = {result.modulus}",
        f"key frequencies: {result.key_frequencies} (hold {held:.1%} of the embedding's energy)",
        f"test loss {result.test_loss:.3g}  restricted loss {result.restricted_loss:.3g}  "
        f"excluded loss (train pairs) {result.excluded_loss:.3g}  train loss {result.train_loss:.3g}",
        "accuracy after ablating the embedding: "
        + ", ".join(f"{name} {acc:.3f}" for name, acc in result.ablation.items()),
    ]
    if result.neurons is not None:
        sizes = ", ".join(f"k={k}: {len(v)}" for k, v in result.neurons.clusters().items()) or "none"
        lines.append(
            f"neuron clusters (share >= {result.neurons.threshold:g}): {sizes}; "
            f"{result.neurons.clustered_fraction:.0%} of {result.neurons.n_units} neurons"
        )
    if result.clock_pizza is not None:
        cp = result.clock_pizza
        lines.append(
            f"gradient symmetricity {cp.gradient_symmetricity:.3f}, distance irrelevance "
            f"{cp.distance_irrelevance:.3f} -> {cp.algorithm}"
        )
    for path in payload.get("figures", []):
        lines.append(f"wrote {path}")
    return "\n".join(lines)

"""The Fourier spectrum of a modular-addition model (Nanda et al. 2023; Gromov 2023)."""

from __future__ import annotations

from pathlib import Path

from mechscope.errors import MechscopeError
from mechscope.report.context import ReportContext
from mechscope.fourier import default_neuron_layer
from mechscope.report.html import Html, join, key_values, link, paragraph, table, tag
from mechscope.report.sections.units import unit_page
from mechscope.report.section import Section, figure_path, section_crumbs, skipped
from mechscope.report.widgets import figure

__all__ = ["build_fourier", "TITLE"]

TITLE = "Fourier spectrum"


def build_fourier(ctx: ReportContext) -> Section:
    """Key frequencies, restricted/excluded loss, ablations and neuron clusters of a model of (a + b) mod p."""
    data = ctx.data
    if data is None or "modulus" not in data.extras:
        kind = "no data" if data is None else f"{ctx.data_kind!r} data"
        return skipped("fourier", TITLE, f"the Fourier analysis reads models of (a + b) mod p; this model has {kind}.")
    if data.extras.get("operation", "+") != "+":
        return skipped("fourier", TITLE, f"the Fourier analysis reads (a + b) mod p; this model learned "
                       f"{data.extras.get('operation')!r}.")
    from mechscope.fourier import analyze_modular
    from mechscope.plots import save_figure
    from mechscope.plots.fourier import (
        plot_frequency_spectrum,
        plot_logit_spectrum_2d,
        plot_neuron_clusters,
        plot_progress,
    )

    try:
        result = analyze_modular(ctx.model, data=data)
    except MechscopeError as err:
        return skipped("fourier", TITLE, f"the analysis does not fit this model: {err}")
    page = ctx.site.rel("fourier.html")
    figures: list[tuple[str, str]] = []

    def add(name: str, caption: str) -> Path:
        rel, path = figure_path(ctx, name)
        figures.append((rel, caption))
        return path

    keys = result.key_frequencies
    spectra = {"embedding": result.embedding, "logits along the output class": result.output}
    save_figure(plot_frequency_spectrum(spectra, key_frequencies=keys),
                add("spectrum.png", "Energy per frequency; key frequencies highlighted."))
    save_figure(plot_logit_spectrum_2d(result.logits_2d),
                add("logits-2d.png", "2D Fourier energy of the logit table."))
    if result.neurons is not None:
        save_figure(plot_neuron_clusters(result.neurons),
                    add("neurons.png", "Each neuron's variance share per frequency."))
    if ctx.history and "test_loss" in ctx.history[0]:
        curves = plot_progress(ctx.history, progress=ctx.extra.get("progress") or [],
                               key_frequencies=ctx.extra.get("key_frequencies", keys))
        save_figure(curves, add("progress.png", "Loss curves with restricted and excluded loss."))
    top = result.embedding.top_k_energy(len(keys) or 1)
    facts: list[tuple[str, object]] = [
        ("modulus p", result.modulus),
        ("key frequencies", ", ".join(str(k) for k in keys) or "none"),
        ("their share of the embedding's energy", f"{top[max(top)]:.1%}" if top else "n/a"),
        ("test loss", result.test_loss),
        ("restricted loss (key frequencies only, held-out pairs)", result.restricted_loss),
        ("excluded loss (key frequencies removed, training pairs)", result.excluded_loss),
    ]
    facts += [(f"accuracy, embedding ablation: {name.replace('_', ' ')}", value)
              for name, value in result.ablation.items()]
    if result.clock_pizza is not None:
        cp = result.clock_pizza
        facts.append(("clock or pizza", f"{cp.algorithm} (gradient symmetricity {cp.gradient_symmetricity:.3f}, "
                                        f"distance irrelevance {cp.distance_irrelevance:.3f})"))
    body = [
        paragraph("Energy of the embedding per frequency of Z_p, the logits' spectra, each neuron's frequency and "
                  "the losses with key frequencies kept alone or removed."),
        key_values(facts),
        *[figure(ctx.site.href(page, rel), caption, caption) for rel, caption in figures],
    ]
    if result.neurons is not None:
        body.append(_clusters(ctx, page, result.neurons.clusters(), result.neurons.threshold))
    ctx.site.write_page(page, TITLE, body, crumbs=section_crumbs(ctx, TITLE))
    data_out = result.to_dict()
    ctx.results["fourier"] = data_out
    summary = tag("p", f"p = {result.modulus}; key frequencies {keys or 'none'}; restricted loss "
                  f"{result.restricted_loss:.3g} vs test loss {result.test_loss:.3g}.")
    return Section("fourier", TITLE, page, summary=summary, data=data_out)


def _clusters(ctx: ReportContext, page: str, clusters: dict[int, list[int]], threshold: float) -> Html:
    """Neurons grouped by their frequency, each linked to its unit page when it has one."""
    layer = default_neuron_layer(ctx.model)
    shown = ctx.results.get("units", {}).get(layer, {}).get("shown", 0) if layer is not None else 0
    rows = []
    for k, units in clusters.items():
        cells = [link(ctx.site.href(page, unit_page(ctx, layer, u)), str(u)) if layer is not None and u < shown
                 else str(u) for u in units]
        rows.append([k, len(units), join(cells, ", ")])
    if not rows:
        return paragraph(f"No neuron puts {threshold:.0%} of its variance into one frequency.", class_="muted")
    return tag("section", tag("h2", f"Neurons of {layer} by frequency"),
               paragraph(f"Neurons with at least {threshold:.0%} of their variance in one frequency; each links to "
                         "its unit page."), table(["frequency k", "neurons", "which"], rows))

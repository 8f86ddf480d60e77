"""The Fourier spectrum of a modular-addition model (Nanda et al. 2023; Gromov 2023)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mechscope.errors import MechscopeError
from mechscope.fourier.analysis import default_neuron_layer
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, join, key_values, link, paragraph, table, tag
from mechscope.report.section import (
    Deps,
    NotApplicable,
    Rendered,
    ReportSection,
    figure_path,
    require_data,
    section_crumbs,
    unit_page,
)
from mechscope.report.sections.units import UnitsResult, UnitsSection
from mechscope.report.widgets import figure

if TYPE_CHECKING:
    from mechscope.fourier import FourierAnalysis

__all__ = ["FourierSection", "FourierResult"]


@dataclass(frozen=True)
class FourierResult:
    """The Fourier analysis, and the unit pages its neuron clusters link to."""

    analysis: FourierAnalysis
    units: UnitsResult | None  # the units section's result; None when it did not build

    def __json__(self) -> FourierAnalysis:
        """report.json holds the analysis."""
        return self.analysis


class FourierSection(ReportSection[FourierResult]):
    """Key frequencies, restricted/excluded loss, ablations and neuron clusters of a model of (a + b) mod p."""

    key = "fourier"
    title = "Fourier spectrum"
    needs = (UnitsSection,)  # neurons link to their unit pages

    def applies(self, ctx: ReportContext) -> str | None:
        data = ctx.data
        if data is None or "modulus" not in data.extras:
            kind = "no data" if data is None else f"{ctx.data_kind!r} data"
            return f"the Fourier analysis reads models of (a + b) mod p; this model has {kind}."
        if data.extras.get("operation", "+") != "+":
            return f"the Fourier analysis reads (a + b) mod p; this model learned {data.extras.get('operation')!r}."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> FourierResult:
        from mechscope.fourier import analyze_modular

        try:
            found = analyze_modular(ctx.model, data=require_data(ctx))
        except MechscopeError as err:
            raise NotApplicable(f"the analysis does not fit this model: {err}") from err
        return FourierResult(found, deps.get(UnitsSection))

    def render(self, ctx: ReportContext, result: FourierResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.fourier import (
            plot_frequency_spectrum,
            plot_logit_spectrum_2d,
            plot_neuron_clusters,
            plot_progress,
        )

        found, title, page = result.analysis, self.title, ctx.site.rel("fourier.html")
        figures: list[tuple[str, str]] = []

        def add(name: str, caption: str) -> Path:
            rel, path = figure_path(ctx, name)
            figures.append((rel, caption))
            return path

        keys = found.key_frequencies
        spectra = {"embedding": found.embedding, "logits along the output class": found.output}
        save_figure(plot_frequency_spectrum(spectra, key_frequencies=keys),
                    add("spectrum.png", "Energy per frequency; key frequencies highlighted."))
        save_figure(plot_logit_spectrum_2d(found.logits_2d),
                    add("logits-2d.png", "2D Fourier energy of the logit table."))
        if found.neurons is not None:
            save_figure(plot_neuron_clusters(found.neurons),
                        add("neurons.png", "Each neuron's variance share per frequency."))
        if ctx.history and "test_loss" in ctx.history[0]:
            curves = plot_progress(ctx.history, progress=ctx.extra.get("progress") or [],
                                   key_frequencies=ctx.extra.get("key_frequencies", keys))
            save_figure(curves, add("progress.png", "Loss curves with restricted and excluded loss."))
        top = found.embedding.top_k_energy(len(keys) or 1)
        facts: list[tuple[str, object]] = [
            ("modulus p", found.modulus),
            ("key frequencies", ", ".join(str(k) for k in keys) or "none"),
            ("their share of the embedding's energy", f"{top[max(top)]:.1%}" if top else "n/a"),
            ("test loss", found.test_loss),
            ("restricted loss (key frequencies only, held-out pairs)", found.restricted_loss),
            ("excluded loss (key frequencies removed, training pairs)", found.excluded_loss),
        ]
        facts += [(f"accuracy, embedding ablation: {name.replace('_', ' ')}", value)
                  for name, value in found.ablation.items()]
        if found.clock_pizza is not None:
            cp = found.clock_pizza
            facts.append(("clock or pizza", f"{cp.algorithm} (gradient symmetricity "
                                            f"{cp.gradient_symmetricity:.3f}, distance irrelevance "
                                            f"{cp.distance_irrelevance:.3f})"))
        body = [
            paragraph("Energy of the embedding per frequency of Z_p, the logits' spectra, each neuron's frequency "
                      "and the losses with key frequencies kept alone or removed."),
            key_values(facts),
            *[figure(ctx.site.href(page, rel), caption, caption) for rel, caption in figures],
        ]
        if found.neurons is not None:
            body.append(_clusters(ctx, page, found.neurons.clusters(), found.neurons.threshold, result.units))
        ctx.site.write_page(page, title, body, crumbs=section_crumbs(ctx, title))
        summary = tag("p", f"p = {found.modulus}; key frequencies {keys or 'none'}; restricted loss "
                      f"{found.restricted_loss:.3g} vs test loss {found.test_loss:.3g}.")
        return Rendered(page, summary)


def _clusters(ctx: ReportContext, page: str, clusters: dict[int, list[int]], threshold: float,
              units: UnitsResult | None) -> Html:
    """Neurons grouped by their frequency, each linked to its unit page when it has one."""
    layer = default_neuron_layer(ctx.model)
    shown = 0 if units is None else units.shown(layer)
    rows = []
    for k, neurons in clusters.items():
        cells = [link(ctx.site.href(page, unit_page(ctx, layer, u)), str(u)) if layer is not None and u < shown
                 else str(u) for u in neurons]
        rows.append([k, len(neurons), join(cells, ", ")])
    if not rows:
        return paragraph(f"No neuron puts {threshold:.0%} of its variance into one frequency.", class_="muted")
    return tag("section", tag("h2", f"Neurons of {layer} by frequency"),
               paragraph(f"Neurons with at least {threshold:.0%} of their variance in one frequency; each links to "
                         "its unit page."), table(["frequency k", "neurons", "which"], rows))

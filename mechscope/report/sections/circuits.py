"""Class circuits (seed 003): each class's main detector channels, tested by ablation."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.circuits import ClassCircuits, class_circuits
from mechscope.errors import MechscopeError
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, join, link, paragraph, table, tag
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

__all__ = ["CircuitsSection", "CircuitsResult"]


@dataclass(frozen=True)
class CircuitsResult:
    """The class circuits, and the unit pages their channels link to."""

    circuits: ClassCircuits
    units: UnitsResult | None  # the units section's result; None when it did not build

    def __json__(self) -> ClassCircuits:
        """report.json holds the circuits and their causal check."""
        return self.circuits


class CircuitsSection(ReportSection[CircuitsResult]):
    """Top channels per class in the default layer (stated on the page), their wiring, and a causal check."""

    key = "circuits"
    title = "Class circuits"
    needs = (UnitsSection,)  # channels link to their unit pages

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None or not ctx.is_conv or not ctx.is_classifier:
            return ("class circuits are read from conv classifiers; this model "
                    + ("has no data" if ctx.data is None else "has no conv layer over image inputs"
                       if not ctx.is_conv else "is not a classifier") + ".")
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> CircuitsResult:
        try:
            found = class_circuits(ctx.model, require_data(ctx), n_random=ctx.settings.circuit_draws,
                                   output=ctx.settings.output)
        except MechscopeError as err:
            raise NotApplicable(f"the analysis does not fit this model: {err}") from err
        return CircuitsResult(found, deps.get(UnitsSection))

    def render(self, ctx: ReportContext, result: CircuitsResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.circuits import plot_causal_check, plot_class_circuit, plot_class_circuits

        found, page = result.circuits, ctx.site.rel("circuits.html")
        contributions, check = found.contributions, found.causal
        names = contributions.class_names
        rel_all, path = figure_path(ctx, "class-circuits.png")
        save_figure(plot_class_circuits(contributions, found.class_mean_inputs), path)
        rel_check, path = figure_path(ctx, "causal-check.png")
        save_figure(plot_causal_check(check, class_names=names), path)
        shown = 0 if result.units is None else result.units.shown(found.layer)
        rows = []
        per_class: list[Html] = []
        for c, name in enumerate(names):
            tops = [int(ch) for ch in contributions.top_channels[c]]
            channel_links = join([_channel(ctx, page, found.layer, ch, shown) for ch in tops], ", ")
            rows.append([name, channel_links, float(check.top_drop[c]), float(check.random_drop[c])])
            rel_c, path = figure_path(ctx, f"circuit-class-{c}.png")
            save_figure(plot_class_circuit(found, c), path)
            per_class.append(tag("div", figure(ctx.site.href(page, rel_c), f"circuit of class {name}",
                                               f"class {name}"), class_="half"))
        how = ("head weight x mean activation (exact: a Linear reads the channel means)"
               if contributions.method == "gap" else "gradient x activation")
        body = [
            paragraph(f"Detector layer: {found.layer}, the default layer (the last map with spatial structure, "
                      "taken after its nonlinearity at the block output; mechscope.capture.default_layer)."),
            paragraph(f"For each class, the channels of {found.layer} that contribute most to its logit ({how}), "
                      "chosen on the training split; ablating them on the held-out split is compared with ablating "
                      f"as many random channels ({check.n_random} draws, {check.mode} ablation). Ratio of accuracy "
                      f"drops: {check.ratio:.3g}; {check.classes_hurt_more} of {len(names)} classes lose more from "
                      "their own detectors."),
            table(["class", "top channels", "accuracy drop: top channels ablated", "random channels ablated"], rows),
            figure(ctx.site.href(page, rel_all), "main detectors per class", "Mean input per class and its top "
                   "channels' mean activation maps."),
            figure(ctx.site.href(page, rel_check), "causal check",
                   "Ablating each class's detectors vs random channels."),
            tag("h2", "One circuit per class"),
            tag("div", *per_class, class_="halves"),
        ]
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        summary = tag("p", f"Detectors in {found.layer}: ablation ratio {check.ratio:.3g} (top vs random channels); "
                      f"{check.classes_hurt_more} of {len(names)} classes hurt more by their own detectors.")
        return Rendered(page, summary)


def _channel(ctx: ReportContext, page: str, layer: str, channel: int, shown: int) -> Html:
    """A channel, linked to its unit page when it has one (`shown`: units of `layer` with a page)."""
    if channel < shown:
        return link(ctx.site.href(page, unit_page(ctx, layer, channel)), f"ch {channel}")
    return tag("span", f"ch {channel}")

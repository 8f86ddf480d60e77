"""Activation statistics by depth, and every channel's map for one input (seed 004)."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.circuits import DepthStatistics, activation_maps, depth_statistics
from mechscope.circuits.activations import ActivationMaps
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, link, paragraph, table, tag
from mechscope.report.section import (
    Deps,
    Rendered,
    ReportSection,
    figure_path,
    layer_page,
    require_data,
    section_crumbs,
)
from mechscope.report.widgets import figure, fmt

__all__ = ["DepthSection", "DepthResult"]


@dataclass(frozen=True)
class DepthResult:
    """The statistics of every unit layer, and one input's activation maps (conv models)."""

    statistics: DepthStatistics
    maps: ActivationMaps | None  # every channel's map for the first held-out input; None without conv layers

    def __json__(self) -> DepthStatistics:
        """report.json holds the statistics and the claim's verdict."""
        return self.statistics


class DepthSection(ReportSection[DepthResult]):
    """Mean activation, sparsity and active units of every unit layer; activation maps of one input."""

    key = "depth"
    title = "Activations by depth"

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None:
            return "no data was given to measure activations on."
        if not ctx.unit_layers:
            return f"{ctx.model_class} has no elementwise nonlinearity to measure."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> DepthResult:
        data = require_data(ctx)
        stats = depth_statistics(ctx.model, data.x_test, ctx.unit_layers, progress=ctx.progress)
        maps = None
        if ctx.is_conv:
            maps = activation_maps(ctx.model, data.x_test[:1], [n for n in ctx.unit_layers if _spatial(ctx, n)])
        return DepthResult(stats, maps)

    def render(self, ctx: ReportContext, result: DepthResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.circuits import plot_activation_maps, plot_depth_statistics

        stats, page = result.statistics, ctx.site.rel("depth.html")
        rel, path = figure_path(ctx, "depth-statistics.png")
        save_figure(plot_depth_statistics(stats), path)
        rows = [
            [link(ctx.site.href(page, layer_page(ctx, s.layer)), s.layer), s.n_units, s.mean_activation,
             s.mean_active_value, s.fraction_zeros, s.active_units, f"{s.active_fraction:.1%}"]
            for s in stats.layers
        ]
        body: list[Html] = [
            paragraph(f"Measured over the {stats.n_inputs} held-out inputs, layer by layer from shallow to deep. "
                      "Seed 004 claims that deeper activations are sparser while early activations are larger."),
            paragraph(stats.verdict(), class_="verdict"),
            table(["layer", "scalar activations per input", "mean activation", "mean of non-zero",
                   "fraction of zeros", "active per input", "active share"], rows),
            figure(ctx.site.href(page, rel), "activation statistics by depth",
                   "Mean activation, sparsity and active units per input against depth."),
        ]
        if result.maps is not None:
            rel, path = figure_path(ctx, "activation-maps.png")
            save_figure(plot_activation_maps(result.maps), path)
            body.append(tag("section", tag("h2", "Every channel's map for one input"),
                            figure(ctx.site.href(page, rel), "activation maps of one input",
                                   "The first held-out input and each channel's activation map, one colour scale "
                                   "per layer.")))
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        zeros = " \u2192 ".join(fmt(round(s.fraction_zeros, 2)) for s in stats.layers)
        summary = tag("p", f"Fraction of zeros {zeros}; claim ", "holds" if stats.claim_holds else
                      ("partly holds" if stats.sparser_deeper or stats.larger_early else "does not hold"), ".")
        return Rendered(page, summary)


def _spatial(ctx: ReportContext, layer: str) -> bool:
    info = ctx.layer_info(layer)
    return info is not None and info.output_shape is not None and len(info.output_shape) == 3

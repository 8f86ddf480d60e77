"""Activation statistics by depth, and every channel's map for one input (seed 004)."""

from __future__ import annotations

from mechscope.circuits import activation_maps, depth_statistics
from mechscope.report.context import ReportContext
from mechscope.report.html import link, paragraph, table, tag
from mechscope.report.section import Section, figure_path, section_crumbs, skipped
from mechscope.report.sections.units import layer_page
from mechscope.report.widgets import figure, fmt

__all__ = ["build_depth", "TITLE"]

TITLE = "Activations by depth"


def build_depth(ctx: ReportContext) -> Section:
    """Mean activation, sparsity and active units of every unit layer; activation maps of one input."""
    if ctx.data is None:
        return skipped("depth", TITLE, "no data was given to measure activations on.")
    if not ctx.unit_layers:
        return skipped("depth", TITLE, f"{ctx.model_class} has no elementwise nonlinearity to measure.")
    from mechscope.plots import save_figure
    from mechscope.plots.circuits import plot_activation_maps, plot_depth_statistics

    page = ctx.site.rel("depth.html")
    stats = depth_statistics(ctx.model, ctx.data.x_test, ctx.unit_layers, progress=ctx.progress)
    ctx.results["depth"] = stats.to_dict()
    rel, path = figure_path(ctx, "depth-statistics.png")
    save_figure(plot_depth_statistics(stats), path)
    rows = [
        [link(ctx.site.href(page, layer_page(ctx, s.layer)), s.layer), s.n_units, s.mean_activation,
         s.mean_active_value, s.fraction_zeros, s.active_units, f"{s.active_fraction:.1%}"]
        for s in stats.layers
    ]
    body = [
        paragraph(f"Measured over the {stats.n_inputs} held-out inputs, layer by layer from shallow to deep. "
                  "Seed 004 claims that deeper activations are sparser while early activations are larger."),
        paragraph(stats.verdict(), class_="verdict"),
        table(["layer", "scalar activations per input", "mean activation", "mean of non-zero", "fraction of zeros",
               "active per input", "active share"], rows),
        figure(ctx.site.href(page, rel), "activation statistics by depth",
               "Mean activation, sparsity and active units per input against depth."),
    ]
    if ctx.is_conv:
        maps = activation_maps(ctx.model, ctx.data.x_test[:1], [n for n in ctx.unit_layers if _spatial(ctx, n)])
        rel, path = figure_path(ctx, "activation-maps.png")
        save_figure(plot_activation_maps(maps), path)
        body.append(tag("section", tag("h2", "Every channel's map for one input"),
                        figure(ctx.site.href(page, rel), "activation maps of one input",
                               "The first held-out input and each channel's activation map, one colour scale per "
                               "layer.")))
    ctx.site.write_page(page, TITLE, body, crumbs=section_crumbs(ctx, TITLE))
    zeros = " \u2192 ".join(fmt(round(s.fraction_zeros, 2)) for s in stats.layers)
    summary = tag("p", f"Fraction of zeros {zeros}; claim ", "holds" if stats.claim_holds else
                  ("partly holds" if stats.sparser_deeper or stats.larger_early else "does not hold"), ".")
    return Section("depth", TITLE, page, summary=summary, data=stats.to_dict())


def _spatial(ctx: ReportContext, layer: str) -> bool:
    info = ctx.layer_info(layer)
    return info is not None and info.output_shape is not None and len(info.output_shape) == 3

"""Layer pages and unit pages: feature visualisation, dataset examples, polysemanticity,
connections and ablation, one page per unit, linked both ways.

Site layout: `layers/<layer>/index.html` for a layer, `layers/<layer>/unit-<n>.html` for
a unit, rendered units under `layers/<layer>/fv/`, dataset inputs once under `inputs/`. A
layer with more than `UNITS_PER_PAGE` units with a page lists them over several layer pages
(`index.html`, `index-2.html`, ...), each with the same header and a pager between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.circuits import conv_kernels
from mechscope.circuits.connections import Connection, connections_into
from mechscope.errors import MechscopeError
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, join, key_values, link, paragraph, raw, tag
from mechscope.report.images import Picture, describe_input, input_range, save_picture
from mechscope.report.section import (
    Deps,
    NotApplicable,
    Rendered,
    ReportSection,
    figure_path,
    layer_page,
    unit_page,
)
from mechscope.report.sections.depth import DepthResult, DepthSection
from mechscope.report.site import Crumb
from mechscope.report.units import LayerUnits, analyse_units, example_inputs
from mechscope.report.widgets import colorbar, figure, fmt, label_bar, thumb, value_bar

__all__ = ["UnitsSection", "UnitsResult", "UNITS_PER_PAGE"]

UNITS_PER_PAGE = 256
"""Units listed on one layer page: their grid of pictures and their table stay quick to open."""


@dataclass(frozen=True)
class UnitsResult:
    """Every unit layer's per-unit results, shallow first, with the depth statistics its layer pages quote."""

    layers: dict[str, LayerUnits]  # layer name -> its units
    depth: DepthResult | None  # the depth section's result; None when it did not build

    def shown(self, layer: str | None) -> int:
        """Units of `layer` that have a page (0 for a layer without unit pages)."""
        units = self.layers.get(layer) if layer is not None else None
        return 0 if units is None else units.shown

    def __json__(self) -> dict[str, list[str]]:
        """report.json lists the layers with unit pages (the units' numbers are on the pages)."""
        return {"layers": list(self.layers)}


class UnitsSection(ReportSection[UnitsResult]):
    """Analyse every unit layer and write one page per layer and per unit."""

    key = "units"
    title = "Layers and units"
    needs = (DepthSection,)  # the layer pages quote each layer's activation statistics

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None:
            return ("no data was given, and dataset examples, ablations and feature visualisations all need "
                    "inputs.")
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> UnitsResult:
        results = analyse_units(ctx)
        if not results:
            raise NotApplicable(f"{ctx.model_class} has no elementwise nonlinearity (ReLU, tanh, ...) whose outputs "
                                "could be shown as units.")
        return UnitsResult(results, deps.get(DepthSection))

    def render(self, ctx: ReportContext, result: UnitsResult) -> Rendered:
        results = result.layers
        inputs, targets = example_inputs(ctx)
        pages = _Pages(ctx, result, inputs, targets)
        total = sum(pages.parts(name) + units.shown for name, units in results.items())
        with tqdm(total=total, desc="unit pages", unit="page", leave=False,
                  disable=None if ctx.progress else True) as bar:
            for name in results:
                pages.layer(name)
                bar.update(pages.parts(name))
                for unit in range(results[name].shown):
                    pages.unit(name, unit)
                    bar.update()
        rows = []
        for name, units in results.items():
            line = [link(layer_page(ctx, name), name), f": {units.shown} of {units.n_units} units"]
            if units.poly is not None:
                line.append(f", {int(units.poly.is_polysemantic.sum())} polysemantic")
            rows.append(tag("li", *line))
        return Rendered(layer_page(ctx, next(iter(results))), tag("ul", *rows))


class _Pages:
    """Writes the layer and unit pages of one report; remembers the thumbnails it saved."""

    def __init__(self, ctx: ReportContext, result: UnitsResult, inputs: Tensor, targets: Tensor) -> None:
        self.ctx, self.results, self.inputs, self.targets = ctx, result.layers, inputs, targets
        self.depth = None if result.depth is None else result.depth.statistics
        self.site = ctx.site
        self.names = list(result.layers)
        self.image = ctx.is_image
        low, high = input_range(ctx.data) if ctx.data is not None else (0.0, 1.0)
        self.style = Picture(low=low, high=high)
        self.saved: set[int] = set()

    # ----- shared pieces -------------------------------------------------------------
    def input_thumb(self, page: str, index: int) -> str:
        rel = self.site.rel("inputs", f"in-{index}.png")
        if index not in self.saved:
            save_picture(self.site, rel, self.inputs[index], self.style)
            self.saved.add(index)
        return self.site.href(page, rel)

    def fv_rel(self, layer: str, unit: int) -> str | None:
        units = self.results[layer]
        if units.featurevis is None or unit >= units.shown:
            return None
        return self.site.rel("layers", layer, "fv", f"unit-{unit}.png")

    def label(self, index: int) -> str:
        names = self.ctx.class_names
        value = self.targets[index]
        if names and not value.is_floating_point():
            return names[int(value)]
        return fmt(float(value))

    def crumbs(self, layer: str, unit: int | None = None) -> list[Crumb]:
        trail: list[Crumb] = [(self.ctx.name, "index.html")]
        if unit is None:
            return trail + [(f"layer {layer}", None)]
        return trail + [(f"layer {layer}", self.listing(layer, unit)), (f"unit {unit}", None)]

    def parts(self, layer: str) -> int:
        """How many layer pages list the units of `layer` (`UNITS_PER_PAGE` to a page)."""
        return max(1, math.ceil(self.results[layer].shown / UNITS_PER_PAGE))

    def span(self, layer: str, part: int) -> range:
        """The units listed on layer page `part` of `layer`."""
        return range(part * UNITS_PER_PAGE, min((part + 1) * UNITS_PER_PAGE, self.results[layer].shown))

    def listing(self, layer: str, unit: int) -> str:
        """Site-relative path of the layer page that lists `unit`."""
        return layer_page(self.ctx, layer, unit // UNITS_PER_PAGE)

    def unit_name(self, layer: str, unit: int) -> str:
        return f"{layer} {'channel' if self.is_conv_layer(layer) else 'unit'} {unit}"

    def is_conv_layer(self, layer: str) -> bool:
        ex = self.results[layer].examples
        if ex is None:
            return False
        return ex.unit_axes.kind == "conv" if ex.unit_axes is not None else len(ex.activation_shape) > 1

    # ----- layer page ----------------------------------------------------------------
    def layer(self, layer: str) -> None:
        """Write the pages of `layer`: the same facts and figures on each, then its slice of the units."""
        ctx, units = self.ctx, self.results[layer]
        facts = key_values(self.layer_facts(layer))
        figures = self.layer_figures(layer, layer_page(ctx, layer))  # every part lies in one folder: same links
        parts = self.parts(layer)
        for part in range(parts):
            page, span = layer_page(ctx, layer, part), self.span(layer, part)
            pager = self.layer_pager(layer, part, page)
            body = [self.layer_nav(layer, page), facts, pager, self.unit_grid(layer, page, span),
                    self.unit_table(layer, page, span), pager, *figures]
            where = f"; units {_numbers(span)} of {units.shown}" if parts > 1 else ""
            self.site.write_page(page, f"Layer {layer}", body, crumbs=self.crumbs(layer),
                                 subtitle=f"{ctx.model_class}: layer {self.names.index(layer) + 1} of "
                                          f"{len(self.names)} with units, shallow to deep{where}")

    def layer_pager(self, layer: str, part: int, page: str) -> Html:
        """Links between the pages of a layer ("units 0-255 | 256-511 | ..."); empty when one page lists all."""
        parts = self.parts(layer)
        if parts == 1:
            return raw("")
        items = []
        for p in range(parts):
            text = _numbers(self.span(layer, p))
            items.append(tag("span", text, class_="here", aria_current="page") if p == part
                         else link(self.site.href(page, layer_page(self.ctx, layer, p)), text))
        return tag("nav", "units ", join(items, " | "), class_="parts", aria_label=f"pages of layer {layer}")

    def layer_facts(self, layer: str) -> list[tuple[str, object]]:
        ctx, units = self.ctx, self.results[layer]
        info = ctx.layer_info(layer)
        facts: list[tuple[str, object]] = [
            ("type", info.type if info else "?"),
            ("output shape (one input)", "x".join(str(d) for d in info.output_shape) if info and info.output_shape
             else "?"),
            ("units", f"{units.n_units} ({units.shown} with a page)"),
        ]
        for row in () if self.depth is None else self.depth.layers:
            if row.layer == layer:
                facts += [("mean activation", row.mean_activation), ("fraction of zeros", row.fraction_zeros),
                          ("active units per input", row.active_units)]
        if units.poly is not None:
            facts.append(("polysemantic units", f"{int(units.poly.is_polysemantic.sum())} of {units.n_units} "
                          f"(top-{units.poly.k} examples need >= {units.poly.min_classes} classes to cover "
                          f"{units.poly.coverage:.0%})"))
            facts.append(("dead units", int(units.poly.is_dead.sum())))
        return facts

    def layer_nav(self, layer: str, page: str) -> Html:
        i = self.names.index(layer)
        items = []
        for j, name in enumerate(self.names):
            text = f"{name} ({self.results[name].n_units})"
            items.append(tag("li", text if j == i else link(self.site.href(page, layer_page(self.ctx, name)), text),
                             class_="here" if j == i else None))
        return tag("nav", tag("span", "Layers, shallow to deep:", class_="muted"), tag("ol", *items), class_="layers")

    def unit_grid(self, layer: str, page: str, span: range) -> Html:
        units = self.results[layer]
        cells = []
        for u in span:
            href = self.site.href(page, unit_page(self.ctx, layer, u))
            caption = [f"{u}"]
            if units.featurevis is not None:
                ratio = units.featurevis.evidence.ratio[u]
                caption.append(" never active" if math.isnan(ratio) else f" \u00d7{ratio:.2f}")
            if units.poly is not None and bool(units.poly.is_polysemantic[u]):
                caption.append(" P")
            fv = self.fv_rel(layer, u)
            if fv is not None:
                save_picture(self.site, fv, units.featurevis.result.images[u], self.style)  # type: ignore[union-attr]
                cells.append(thumb(self.site.href(page, fv), f"feature visualisation of unit {u}", join(caption),
                                   href=href, size=64))
            else:
                cells.append(tag("div", link(href, f"unit {u}"), tag("span", self.top_text(layer, u), class_="muted"),
                                 class_="unitcard"))
        if units.featurevis is not None:
            rendered = units.featurevis.result
            head = [tag("h2", "Feature visualisation of every unit"),
                    paragraph(f"Each picture is the input optimised to excite one unit "
                              f"({rendered.description}; {int(rendered.trace.shape[0])} steps). "
                              "\u00d7r = its activation over the best dataset example's; P = polysemantic. Click a "
                              "unit for its page."),
                    colorbar(self.style.cmap, self.style.low, self.style.high, "pixel value")]
        else:
            head = [tag("h2", "Units"), paragraph("Not shown: feature visualisation; ", units.featurevis_reason or "",
                                                 class_="missing")]
        return tag("section", *head, tag("div", *cells, class_="grid"))

    def top_text(self, layer: str, unit: int, *, with_value: bool = True) -> str:
        ex = self.results[layer].examples
        if ex is None:
            return ""
        index = int(ex.top.indices[unit, 0])
        what = f"input {index}" if self.image else describe_input(self.inputs[index], self.ctx.data)
        if self.ctx.class_names:
            what += f" (label {self.label(index)})"
        return f"max {fmt(float(ex.top.values[unit, 0]))} on {what}" if with_value else what

    def unit_table(self, layer: str, page: str, span: range) -> Html:
        units = self.results[layer]
        header = ["unit", "max activation", "top example (label)" if self.ctx.class_names else "top example"]
        if units.poly is not None:
            header += [f"labels of the top {units.poly.k}", "classes covering 80%", "entropy (bits)"]
        if units.ablation is not None:
            header.append(f"ablation: {units.ablation_metric}")
        header.append("strongest input")
        high = float(units.ablation.abs().max()) if units.ablation is not None and units.ablation.numel() else 0.0
        rows = []
        for u in span:
            row: list[object] = [link(self.site.href(page, unit_page(self.ctx, layer, u)), f"unit {u}")]
            ex = units.examples
            row.append(float(ex.top.values[u, 0]) if ex is not None else "")
            row.append(self.top_text(layer, u, with_value=False) if ex is not None else "")
            if units.poly is not None:
                dead = bool(units.poly.is_dead[u])
                counts = {c: int(n) for c, n in enumerate(units.poly.label_counts[u].tolist()) if n}
                row += [label_bar(counts, self.ctx.class_names, legend=False),
                        "dead" if dead else int(units.poly.n_covering[u]), float(units.poly.entropy[u])]
            if units.ablation is not None:
                value = float(units.ablation[u])
                row.append(join([value_bar(value, high, signed=True), f" {fmt(value)}"]))
            inbound = units.inbound.get(u, [])
            row.append(self.connection_link(page, inbound[0]) if inbound else "-")
            rows.append(row)
        legend = None
        if units.poly is not None:
            legend = tag("div", tag("span", "Label colours: ", class_="muted"),
                         label_bar({c: 1 for c in range(len(self.ctx.class_names))}, self.ctx.class_names,
                                   counts_shown=False), class_="legendrow")
        return tag("section", tag("h2", "Units at a glance"), legend,
                   tag("table", tag("thead", tag("tr", *[tag("th", h) for h in header])),
                       tag("tbody", *[tag("tr", *[tag("td", fmt(c) if isinstance(c, float) else c) for c in row])
                                      for row in rows]), class_="units"))

    def layer_figures(self, layer: str, page: str) -> list[Html]:
        ctx, units = self.ctx, self.results[layer]
        out: list[Html] = []
        try:
            pair = connections_into(ctx.model, layer, example=ctx.example)
        except MechscopeError:
            pair = None
        if pair is not None:
            from mechscope.plots import save_figure
            from mechscope.plots.circuits import plot_connections, plot_conv_kernels

            rel, path = figure_path(ctx, f"kernels-{layer}.png")
            kernels = conv_kernels(ctx.model, pair.target)
            save_figure(plot_conv_kernels(kernels, max_out=16, max_in=16), path)
            shape = tuple(kernels.weight.shape)
            rel_c, path = figure_path(ctx, f"connections-{layer}.png")
            save_figure(plot_connections(pair), path)
            out.append(tag("section", tag("h2", f"Filters of {pair.target} and how {pair.source} feeds it"),
                           tag("div", tag("div", figure(self.site.href(page, rel), f"kernels of {pair.target}",
                                                        f"Kernels {shape} (at most 16 x 16 shown): one tile per "
                                                        "(output, input) channel pair; red positive, blue negative."),
                                          class_="half"),
                               tag("div", figure(self.site.href(page, rel_c), f"connections into {layer}",
                                                 f"Strength of every {pair.source} -> {pair.target} channel pair."),
                                   class_="half"), class_="halves")))
        elif layer == self.names[0] and ctx.is_image:
            try:
                kernels = conv_kernels(ctx.model)
            except MechscopeError:
                kernels = None
            if kernels is not None:
                from mechscope.plots import save_figure
                from mechscope.plots.circuits import plot_conv_kernels

                rel, path = figure_path(ctx, f"kernels-{layer}.png")
                save_figure(plot_conv_kernels(kernels), path)
                out.append(tag("section", tag("h2", f"Filters of {kernels.layer}"),
                               figure(self.site.href(page, rel), f"kernels of {kernels.layer}",
                                      "First-layer kernels; red positive, blue negative weights.")))
        return out

    # ----- unit page -----------------------------------------------------------------
    def unit(self, layer: str, u: int) -> None:
        ctx, units = self.ctx, self.results[layer]
        page = unit_page(ctx, layer, u)
        nav = []
        if u > 0:
            nav.append(link(self.site.href(page, unit_page(ctx, layer, u - 1)), f"\u2190 unit {u - 1}"))
        nav.append(link(self.site.href(page, self.listing(layer, u)), f"all units of {layer}"))
        if u + 1 < units.shown:
            nav.append(link(self.site.href(page, unit_page(ctx, layer, u + 1)), f"unit {u + 1} \u2192"))
        body = [tag("nav", *nav, class_="pager"), self.unit_visual(layer, u, page), self.examples(layer, u, page),
                self.unit_poly(layer, u), self.connections(layer, u, page), self.unit_ablation(layer, u)]
        self.site.write_page(page, self.unit_name(layer, u), body, crumbs=self.crumbs(layer, u),
                             subtitle=f"{ctx.model_class}, layer {layer} ({units.n_units} units)")

    def unit_visual(self, layer: str, u: int, page: str) -> Html:
        units = self.results[layer]
        fv = self.fv_rel(layer, u)
        if fv is None or units.featurevis is None:
            return tag("section", tag("h2", "Feature visualisation"),
                       paragraph("Not shown: ", units.featurevis_reason or "no rendering.", class_="missing"))
        ev = units.featurevis.evidence
        ratio = ev.ratio[u]
        facts = [("activation of the picture", ev.activation[u]), ("best dataset activation", ev.dataset_max[u]),
                 ("ratio", "never active on the data" if math.isnan(ratio) else f"{ratio:.3f}")]
        return tag("section", tag("h2", "Feature visualisation"),
                   tag("div", thumb(self.site.href(page, fv), f"feature visualisation of {layer} unit {u}",
                                    f"the input that excites unit {u} most", size=192, class_="thumb big"),
                       tag("div", key_values(facts), colorbar(self.style.cmap, self.style.low, self.style.high,
                                                                 "pixel value")), class_="row"))

    def examples(self, layer: str, u: int, page: str) -> Html:
        ex = self.results[layer].examples
        if ex is None:
            return tag("section", tag("h2", "Dataset examples"), paragraph("Not shown: no examples.", class_="missing"))
        parts: list[Html] = [tag("h2", "Dataset examples")]
        how = "its largest value over positions" if len(ex.activation_shape) > 1 else "its activation"
        parts.append(paragraph(f"The held-out inputs ({ex.n_inputs}) that drive this unit most and least, scored by "
                               f"{how}. Boxes mark the receptive field around the strongest position."
                               if self.image and ex.receptive_field is not None else
                               f"The held-out inputs ({ex.n_inputs} distinct) that drive this unit most and least, "
                               f"scored by {how}."))
        for which, title in (("top", "Strongest"), ("bottom", "Weakest")):
            ranked = ex.top if which == "top" else ex.bottom
            indices, values = ranked.indices[u].tolist(), ranked.values[u].tolist()
            parts.append(tag("h3", title))
            if self.image:
                windows = ex.windows(which)  # type: ignore[arg-type]
                cells = []
                for j, (index, value) in enumerate(zip(indices, values)):
                    box = None if windows is None else self.box(windows[u, j])
                    cells.append(thumb(self.input_thumb(page, index), f"input {index}",
                                       join([f"{fmt(value)}", raw("<br>"), f"label {self.label(index)}"]), box=box))
                parts.append(tag("div", *cells, class_="grid"))
            else:
                rows = [[describe_input(self.inputs[i], self.ctx.data), self.label(i), float(v)]
                        for i, v in zip(indices, values)]
                parts.append(tag("table", tag("thead", tag("tr", *[tag("th", h) for h in
                                                                  ("input", "target", "activation")])),
                                 tag("tbody", *[tag("tr", *[tag("td", fmt(c) if isinstance(c, float) else c)
                                                            for c in row]) for row in rows])))
        return tag("section", *parts)

    def box(self, window: Tensor) -> tuple[float, float, float, float]:
        height, width = self.inputs.shape[-2], self.inputs.shape[-1]
        (y0, h), (x0, w) = window[-2].tolist(), window[-1].tolist()
        left, top = max(x0, 0) / width, max(y0, 0) / height
        right, bottom = min(x0 + w, width) / width, min(y0 + h, height) / height
        return left, top, max(right - left, 0.0), max(bottom - top, 0.0)

    def unit_poly(self, layer: str, u: int) -> Html:
        poly = self.results[layer].poly
        if poly is None:
            return tag("section", tag("h2", "Polysemanticity"),
                       paragraph("Not shown: needs class labels (a classifier).", class_="missing"))
        counts = {c: int(n) for c, n in enumerate(poly.label_counts[u].tolist()) if n}
        if bool(poly.is_dead[u]):
            verdict = "dead: the unit is constant over the data, so its top examples are arbitrary"
        elif bool(poly.is_polysemantic[u]):
            verdict = (f"polysemantic: its top examples need {int(poly.n_covering[u])} classes to cover "
                       f"{poly.coverage:.0%}")
        else:
            verdict = f"selective: {int(poly.n_covering[u])} class(es) cover {poly.coverage:.0%} of its top examples"
        facts = [("verdict", verdict), ("label entropy", f"{float(poly.entropy[u]):.2f} bits"),
                 ("top examples counted", poly.k)]
        return tag("section", tag("h2", "Polysemanticity"), key_values(facts),
                   label_bar(counts, self.ctx.class_names))

    def connections(self, layer: str, u: int, page: str) -> Html:
        units = self.results[layer]
        parts: list[Html] = [tag("h2", "Connections")]
        for title, links in (("Inbound: strongest inputs", units.inbound.get(u, [])),
                             ("Outbound: strongest outputs", units.outbound.get(u, []))):
            parts.append(tag("h3", title))
            if not links:
                parts.append(paragraph("none read from the weights (no directly connected unit layer)",
                                       class_="muted"))
                continue
            high = max(abs(c.signed) for c in links) or 1.0
            rows = []
            for c in links:
                fv = None if c.layer is None else self.fv_rel(c.layer, c.unit)
                picture = (thumb(self.site.href(page, fv), f"feature visualisation of {c.layer} unit {c.unit}", size=40,
                                 href=self.site.href(page, unit_page(self.ctx, c.layer, c.unit)))
                           if fv is not None and c.layer is not None else "")
                rows.append(tag("tr", tag("td", picture), tag("td", self.connection_link(page, c)),
                                tag("td", value_bar(c.signed, high, signed=True), f" {fmt(c.signed)}"),
                                tag("td", fmt(c.strength))))
            parts.append(tag("table", tag("thead", tag("tr", tag("th", ""), tag("th", "unit"),
                                                        tag("th", "signed weight (+ excites, - inhibits)"),
                                                        tag("th", "strength"))),
                             tag("tbody", *rows), class_="connections"))
        return tag("section", *parts)

    def connection_link(self, page: str, c: Connection) -> Html:
        if c.layer is None:
            return tag("span", c.label or f"output {c.unit}")
        if c.layer in self.results and c.unit < self.results[c.layer].shown:
            return link(self.site.href(page, unit_page(self.ctx, c.layer, c.unit)), f"{c.layer} unit {c.unit}")
        return tag("span", f"{c.layer} unit {c.unit}")

    def unit_ablation(self, layer: str, u: int) -> Html:
        units = self.results[layer]
        if units.ablation is None:
            return tag("section", tag("h2", "Ablation"), paragraph("Not shown: ", "; ".join(units.notes) or
                                                                   "no held-out data.", class_="missing"))
        n = min(self.ctx.settings.ablation_inputs, self.ctx.data.x_test.shape[0]) if self.ctx.data else 0
        facts: list[tuple[str, object]] = [(f"{units.ablation_metric} when the unit is set to zero",
                                            float(units.ablation[u])), ("held-out inputs", n)]
        if units.ablation_per_class is not None:
            drops = units.ablation_per_class[u]
            order = torch.argsort(drops, descending=True)[:3].tolist()
            hurt = ", ".join(f"{self.ctx.class_names[c]} ({float(drops[c]):+.1%})" for c in order)
            facts.append(("classes hurt most (accuracy drop)", hurt))
        return tag("section", tag("h2", "Ablation"), key_values(facts))


def _numbers(span: range) -> str:
    """The units of a layer page for people: "256-511", or "512" for one."""
    return str(span.start) if len(span) == 1 else f"{span.start}-{span.stop - 1}"

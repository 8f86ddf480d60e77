"""Probe accuracy by layer: where the inputs, labels and outputs become linearly decodable.

Targets depend on the data: operands `a`, `b` and the model's `output` for modular
arithmetic; the true `label` for image classifiers; the target value `y` (R^2) for
regression. Conv layers are probed on their channel means (one feature per channel): a
linear probe on every position of an early layer costs seconds per fit and mostly
measures the input again. For seed 000's ModularMLP the article's convolutional probe
over the stacked hidden layers is added (full reports).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from mechscope.capture import record
from mechscope.errors import DataError
from mechscope.models import ModularMLP
from mechscope.probes import LayerProbeTable, LinearProbe, ProbeRun, probe_by_layer, probe_modular_mlp, unit_means
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, link, paragraph, table, tag
from mechscope.report.section import (
    Deps,
    NotApplicable,
    Rendered,
    ReportSection,
    figure_path,
    layer_page,
    require_data,
    section_crumbs,
)
from mechscope.report.sections.units import UnitsResult, UnitsSection
from mechscope.report.widgets import figure, fmt

__all__ = ["ProbesSection", "ProbesResult"]

# L-BFGS to a looser tolerance than LinearProbe's default: the control task (random labels)
# otherwise runs every fit to 200 iterations, and two decimals of accuracy are all a page shows.
_PROBE = LinearProbe(max_iter=60, tol=1e-4)


@dataclass(frozen=True)
class ProbesResult:
    """Probe scores by layer and label group (and the article's probe), with what the page says about them."""

    by_layer: LayerProbeTable
    article_probe: ProbeRun | None  # seed 000's convolutional probe; None when not run
    what: str  # the label groups and how layers were read, in words
    n_inputs: int  # inputs the probes were fitted and scored on
    units: UnitsResult | None  # the units section's result (layer links); None when it did not build

    def __json__(self) -> dict[str, Any]:
        """report.json: the table by layer, and the article's probe when it ran."""
        out: dict[str, Any] = {"by_layer": self.by_layer}
        if self.article_probe is not None:
            out["article_probe"] = self.article_probe
        return out


class ProbesSection(ReportSection[ProbesResult]):
    """Fit a linear probe per layer and label group, with baseline, control task and untrained copy."""

    key = "probes"
    title = "Probes by layer"
    needs = (UnitsSection,)  # layers with unit pages are linked

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None:
            return "no data was given to fit probes on."
        if not _probe_layers(ctx):
            return f"{ctx.model_class} has no hidden layer to probe."
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> ProbesResult:
        data = require_data(ctx)
        x = data.x_test[:ctx.settings.probe_inputs]
        candidates = _probe_layers(ctx)
        sample = record(ctx.model, candidates, x[:2], progress=False)
        layers = [layer for layer in candidates if sample.act(layer).shape[0] == x[:2].shape[0]]
        if not layers:  # a layer must give one activation row per example
            raise NotApplicable(f"no layer of {ctx.model_class} gives one activation per example.")
        labels, types, what = _labels(ctx, x)
        constant = [name for name, values in labels.items() if not values.is_floating_point()
                    and values.unique().numel() < 2]
        labels = {name: values for name, values in labels.items() if name not in constant}
        if not labels:
            raise NotApplicable(f"every label group ({', '.join(constant)}) takes a single value on the "
                                f"{x.shape[0]} probed inputs, so there is nothing to decode.")
        seeds = tuple(range(ctx.settings.probe_seeds))
        features = unit_means(ctx.model) if ctx.is_conv else None
        table_ = probe_by_layer(ctx.model, x, labels, layers, features=features, probe=_PROBE, types=types,
                                seeds=seeds, progress=ctx.progress, engine=ctx.engine, cache=ctx.cache)
        if features is not None:
            table_ = replace(table_, probe=f"{table_.probe} on channel means")
            what += ", read from each conv channel's mean activation"
        if constant:
            what += f"; left out, as they take a single value here: {', '.join(constant)}"
        run = None
        if isinstance(ctx.model, ModularMLP) and "pairs_test" in data.extras and ctx.settings.article_probe:
            run = probe_modular_mlp(ctx.model, data, seeds=seeds)
        return ProbesResult(table_, run, what, int(x.shape[0]), deps.get(UnitsSection))

    def render(self, ctx: ReportContext, result: ProbesResult) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.probes import plot_accuracy_by_layer

        table_, page = result.by_layer, ctx.site.rel("probes.html")
        rel, path = figure_path(ctx, "probes-by-layer.png")
        save_figure(plot_accuracy_by_layer(table_), path)
        score = "accuracy" if all(r.kind == "categorical" for r in table_.rows) else "score (accuracy or R^2)"
        rows = [
            [_layer_link(ctx, page, r.layer, result.units), r.label, f"{r.score:.3f} \u00b1 {r.score_std:.3f}",
             r.baseline, r.control, r.selectivity, "-" if r.untrained is None else r.untrained]
            for r in table_.rows
        ]
        body: list[Html] = [
            paragraph(f"A linear probe per layer and label group ({result.what}), fitted on {result.n_inputs} held-out "
                      f"inputs and scored on a held-out part of them, {len(table_.seeds)} seed(s). The controls say "
                      "what a score means: the majority baseline, a control task (random labels per distinct "
                      "input; Hewitt & Liang, 2019), selectivity = task - control, and the same probe on an "
                      "untrained copy of the model."),
            figure(ctx.site.href(page, rel), "probe accuracy by layer", f"Held-out {score} by layer, with controls."),
            table(["layer", "label", "held-out score", "majority baseline", "control task", "selectivity",
                   "untrained copy"], rows),
        ]
        if result.article_probe is not None:
            body += _article_probe(ctx, page, result.article_probe)
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        best = max(table_.rows, key=lambda r: r.selectivity)
        summary = tag("p", f"{len(table_.layers)} layers x {len(table_.labels)} label groups "
                      f"({', '.join(table_.labels)}); highest selectivity {fmt(best.selectivity)} for "
                      f"{best.label!r} at {best.layer}.")
        return Rendered(page, summary)


def _article_probe(ctx: ReportContext, page: str, run: ProbeRun) -> list[Html]:
    """The part of the page on seed 000's convolutional probe, with its figures."""
    from mechscope.plots import save_figure
    from mechscope.plots.probe_run import probe_run_figures

    folder = ctx.site.path(ctx.site.rel("fig", "article-probe"))
    paths = [save_figure(fig, folder / f"{stem}.png") for stem, fig in probe_run_figures(run).items()]
    report = run.report
    body = [
        tag("h2", "The article's convolutional probe"),
        paragraph("Seed 000's probe reads all hidden layers at once as an activation image (layers x units) "
                  f"and decodes a, b and the output: all heads {report.all_heads_accuracy:.3f}, control task "
                  f"{report.control_accuracy:.3f}, selectivity {report.selectivity:.3f}"
                  + (f", untrained copy {report.untrained_accuracy:.3f}" if report.untrained_accuracy is not None
                     else "") + "."),
    ]
    body += [paragraph(f"Note: {note}.", class_="muted") for note in report.notes]
    for p in paths:
        rel_p = ctx.site.rel("fig", "article-probe", p.name)
        body.append(figure(ctx.site.href(page, rel_p), p.stem.replace("_", " "), p.stem.replace("_", " ")))
    return body


def _probe_layers(ctx: ReportContext) -> list[str]:
    """Unit layers plus an embedding, if the model has one (GrokkingMLP's `embed`)."""
    names = [row.name for row in ctx.layers if row.type == "Embedding"]
    return names + list(ctx.unit_layers)


def _labels(ctx: ReportContext, x: Tensor) -> tuple[dict[str, Tensor], Tensor | None, str]:
    data = ctx.data
    if data is None:
        raise DataError("probes need data; pass data=... to build_report.")
    n = x.shape[0]
    y = data.y_test[:n]
    if data.task != "classification":
        return {"y": y.float().reshape(n, -1)[:, 0]}, None, "the regression target y, scored by R^2"
    output = ctx.explained(x).argmax(dim=1)
    pairs = data.extras.get("pairs_test")
    if isinstance(pairs, Tensor) and pairs.shape[0] == data.x_test.shape[0]:
        pairs = pairs[:n]
        return ({"a": pairs[:, 0], "b": pairs[:, 1], "output": output}, pairs,
                "operands a and b and the model's own output")
    if "modulus" in data.extras and x.dim() == 2 and x.shape[1] == 2 and not x.is_floating_point():
        return {"a": x[:, 0], "b": x[:, 1], "output": output}, x, "operands a and b and the model's own output"
    return {"label": y}, None, "the true label"


def _layer_link(ctx: ReportContext, page: str, layer: str, units: UnitsResult | None) -> Html:
    """A probed layer, linked to its page when it has one."""
    if layer in ctx.unit_layers and units is not None and layer in units.layers:
        return link(ctx.site.href(page, layer_page(ctx, layer)), layer)
    return tag("span", layer)

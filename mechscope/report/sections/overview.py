"""The model overview (the report's index.html): what the model is, how it trained, and every section."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from mechscope.errors import MechscopeError
from mechscope.limits import format_size
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, key_values, link, paragraph, table, tag
from mechscope.report.section import Section, figure_path, layer_page
from mechscope.report.widgets import card, figure, fmt

__all__ = ["write_overview"]

_SIZE_ROUNDS = 4  # renderings of the overview that settle the site size it states, its own bytes included


def write_overview(ctx: ReportContext, sections: Sequence[Section], layer_pages: Collection[str] = ()) -> Path:
    """Write index.html: model facts, site size, section cards (or why one is missing), layers, training.

    `layer_pages` names the layers that have a page (linked from the architecture table). The
    overview is written after every other page: the size it states counts every file of the site
    (this page included) but report.json, written after it.
    """
    page = "index.html"
    rest: list[Html] = [  # the training figure is saved here, before the site is counted
        tag("section", tag("h2", "Analyses"), tag("div", *[_card(ctx, s) for s in sections], class_="cards")),
        tag("section", tag("h2", "Architecture"), _layers(ctx, page, layer_pages)),
        tag("section", tag("h2", "Training"), _training(ctx, page)),
    ]
    subtitle = f"{ctx.model_class}" + (f" trained on {_data_text(ctx)}" if ctx.data is not None else "")
    files, size = ctx.site.usage(leave_out=(page,))

    def body(own: int) -> list[Html]:
        stated = f"{files + 1:,} files, {format_size(size + own)}"
        return [tag("section", tag("h2", "Model"), key_values([*_facts(ctx), ("site", stated)])), *rest]

    own = 0  # bytes of this page, which state the size: render until the length no longer changes
    for _ in range(_SIZE_ROUNDS):
        length = len(ctx.site.page_html(page, ctx.name, body(own), crumbs=[(ctx.name, None)],
                                        subtitle=subtitle).encode("utf-8"))
        if length == own:
            break
        own = length
    return ctx.site.write_page(page, ctx.name, body(own), crumbs=[(ctx.name, None)], subtitle=subtitle)


def _card(ctx: ReportContext, section: Section) -> Html:
    if section.error is not None:
        return card(section.title, paragraph("Failed: ", section.error, class_="missing"), status="failed")
    if section.page is None:
        return card(section.title, paragraph("Not shown: ", section.reason or "", class_="missing"), status="skipped")
    return card(section.title, section.summary, href=ctx.site.href("index.html", section.page))


def _facts(ctx: ReportContext) -> list[tuple[str, Any]]:
    facts: list[tuple[str, Any]] = [("class", ctx.model_class)]
    if ctx.source is not None:
        facts.append(("checkpoint", ctx.source))
    if ctx.config:
        facts.append(("configuration", ", ".join(f"{k}={json.dumps(v)}" for k, v in ctx.config.items())))
    facts.append(("parameters", f"{sum(p.numel() for p in ctx.model.parameters()):,}"))
    if ctx.data is not None:
        facts.append(("data", _data_text(ctx)))
        facts.append(("train / test examples", f"{ctx.data.x_train.shape[0]:,} / {ctx.data.x_test.shape[0]:,}"))
        facts.append(("input shape", "x".join(str(d) for d in ctx.data.input_shape) + f" ({ctx.data.x_test.dtype})"))
        if ctx.class_names:
            shown = ", ".join(ctx.class_names[:12]) + (", ..." if len(ctx.class_names) > 12 else "")
            facts.append(("classes", f"{len(ctx.class_names)}: {shown}"))
    for key, value in ctx.metrics.items():
        facts.append((key.replace("_", " "), fmt(value) if isinstance(value, float) else value))
    target = ctx.extra.get("target")
    if target:
        facts.append(("built-in target", target))
    return facts


def _data_text(ctx: ReportContext) -> str:
    if ctx.data is None:
        return "no data"
    spec = ctx.data.spec
    kind = spec.get("kind", "unknown")
    if kind == "modular":
        op, modulus = spec.get("operation", "+"), spec.get("modulus")
        return f"modular arithmetic (a {op} b) mod {modulus}, {spec.get('encoding')}"
    if kind == "function":
        return f"function learning: {spec.get('function')} of {spec.get('n_inputs', '?')} inputs"
    if kind == "digits":
        return f"handwritten digits ({spec.get('source')})"
    return str(kind)


def _layers(ctx: ReportContext, page: str, layer_pages: Collection[str]) -> Html:
    if not ctx.layers:
        return paragraph("Not shown: no data to run the model on, so the layer shapes are unknown.", class_="missing")
    pages = set(layer_pages)
    rows = []
    for row in ctx.layers:
        depth = row.name.count(".")
        name: Any = link(ctx.site.href(page, layer_page(ctx, row.name)), row.name) if row.name in pages else row.name
        shape = "-" if row.output_shape is None else "x".join(str(d) for d in row.output_shape)
        rows.append([tag("span", name, class_=f"indent{min(depth, 3)}"), row.type, shape, row.n_params,
                     "units shown" if row.name in pages else ""])
    return tag("div", paragraph("Every named layer in forward registration order; layers with a page of their units "
                                "are linked."), table(["layer", "type", "output shape (one input)", "parameters", ""],
                                                      rows, class_="layers"))


def _training(ctx: ReportContext, page: str) -> Html:
    if not ctx.history:
        return paragraph("Not shown: no training history was recorded with this model.", class_="missing")
    from mechscope.plots import save_figure
    from mechscope.plots.training import plot_training_curves

    rel, path = figure_path(ctx, "training.png")
    try:
        save_figure(plot_training_curves(ctx.history, title=f"Training of {ctx.name}"), path)
    except MechscopeError as err:
        return paragraph(f"Not shown: {err}", class_="missing")
    extra = [f"{len(ctx.history)} records"]
    seconds = ctx.extra.get("seconds")
    if isinstance(seconds, (int, float)):
        extra.append(f"{seconds:.1f} s of optimisation")
    return figure(ctx.site.href(page, rel), "training curves", "Training curves (" + ", ".join(extra) + ").")

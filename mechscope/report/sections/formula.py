"""The recovered formula of a function learner (seed 002), verified against the network."""

from __future__ import annotations

from mechscope.errors import UnsupportedModelError
from mechscope.report.context import ReportContext
from mechscope.report.html import key_values, paragraph, table, tag
from mechscope.report.section import Section, figure_path, section_crumbs, skipped
from mechscope.report.widgets import figure

__all__ = ["build_formula", "TITLE"]

TITLE = "Recovered formula"


def build_formula(ctx: ReportContext) -> Section:
    """Read the affine pieces a piecewise-linear regression network computes on its test data."""
    if ctx.data is None:
        return skipped("formula", TITLE, "no data was given to read the formula on.")
    if ctx.data.task != "regression":
        return skipped("formula", TITLE, "formulas are read from function learners (regression models); "
                       f"this model is a {ctx.data.task} model.")
    from mechscope.plots import save_figure
    from mechscope.plots.formula import plot_formula
    from mechscope.symbolic import read_formula

    try:
        report = read_formula(ctx.model, ctx.data, max_regions=7)
    except UnsupportedModelError as err:
        return skipped("formula", TITLE, f"the network is not piecewise linear: {err}")
    page = ctx.site.rel("formula.html")
    rel, path = figure_path(ctx, "formula.png")
    save_figure(plot_formula(report), path)
    main = report.formulas[0]
    facts: list[tuple[str, object]] = [
        ("formula", main.formula),
        ("simplified", f"{main.simplified.text} (max error {main.simplified.max_abs_error:.3g})"),
        ("affine on the data", "yes" if report.affine_on_data else "no"),
        ("where it holds", report.holds_on()),
    ]
    facts += [(name.replace("_", " "), value) for name, value in report.metrics.items()]
    rows = [[f"{f.region.coverage:.4%}", f.region.n_points, f.formula, f.region.max_abs_error] for f in report.formulas]
    relations = [[name, r.value, r.expected, "holds" if r.holds else "fails"] for name, r in report.relations.items()]
    body = [
        paragraph("Every activation pattern the test data visits is an affine region; its exact map A x + b is "
                  "composed from the masked weights and checked point by point against the network."),
        key_values(facts),
        tag("h2", "Regions, largest first"),
        table(["coverage", "points", "formula", "max |formula - network|"], rows),
    ]
    if relations:
        body += [tag("h2", "The article's weight relations"), table(["relation", "value", "expected", ""], relations)]
    body.append(figure(ctx.site.href(page, rel), "formula against the network", "Formula against network and "
                       "targets; coverage of the regions; coefficients."))
    if report.notes:
        body.append(paragraph("Notes: " + " ".join(report.notes), class_="muted"))
    ctx.site.write_page(page, TITLE, body, crumbs=section_crumbs(ctx, TITLE))
    data_out = report.to_dict()
    ctx.results["formula"] = data_out
    summary = tag("p", tag("code", main.simplified.text), f" on {main.region.coverage:.2%} of the test points.")
    return Section("formula", TITLE, page, summary=summary, data=data_out)

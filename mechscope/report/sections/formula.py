"""The recovered formula of a function learner (seed 002), verified against the network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mechscope.errors import UnsupportedModelError
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, key_values, paragraph, table, tag
from mechscope.report.section import (
    Deps,
    NotApplicable,
    Rendered,
    ReportSection,
    figure_path,
    require_data,
    section_crumbs,
)
from mechscope.report.widgets import figure

if TYPE_CHECKING:
    from mechscope.symbolic import FormulaReport

__all__ = ["FormulaSection"]


class FormulaSection(ReportSection["FormulaReport"]):
    """Read the affine pieces a piecewise-linear regression network computes on its test data."""

    key = "formula"
    title = "Recovered formula"

    def applies(self, ctx: ReportContext) -> str | None:
        if ctx.data is None:
            return "no data was given to read the formula on."
        if ctx.data.task != "regression":
            return ("formulas are read from function learners (regression models); "
                    f"this model is a {ctx.data.task} model.")
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> FormulaReport:
        from mechscope.symbolic import read_formula

        try:
            return read_formula(ctx.model, require_data(ctx), max_regions=7)
        except UnsupportedModelError as err:
            raise NotApplicable(f"the network is not piecewise linear: {err}") from err

    def render(self, ctx: ReportContext, result: FormulaReport) -> Rendered:
        from mechscope.plots import save_figure
        from mechscope.plots.formula import plot_formula

        report, page = result, ctx.site.rel("formula.html")
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
        rows = [[f"{f.region.coverage:.4%}", f.region.n_points, f.formula, f.region.max_abs_error]
                for f in report.formulas]
        relations = [[name, r.value, r.expected, "holds" if r.holds else "fails"]
                     for name, r in report.relations.items()]
        body: list[Html] = [
            paragraph("Every activation pattern the test data visits is an affine region; its exact map A x + b is "
                      "composed from the masked weights and checked point by point against the network."),
            key_values(facts),
            tag("h2", "Regions, largest first"),
            table(["coverage", "points", "formula", "max |formula - network|"], rows),
        ]
        if relations:
            body += [tag("h2", "The article's weight relations"),
                     table(["relation", "value", "expected", ""], relations)]
        body.append(figure(ctx.site.href(page, rel), "formula against the network", "Formula against network and "
                           "targets; coverage of the regions; coefficients."))
        if report.notes:
            body.append(paragraph("Notes: " + " ".join(report.notes), class_="muted"))
        ctx.site.write_page(page, self.title, body, crumbs=section_crumbs(ctx, self.title))
        summary = tag("p", tag("code", main.simplified.text), f" on {main.region.coverage:.2%} of the test points.")
        return Rendered(page, summary)

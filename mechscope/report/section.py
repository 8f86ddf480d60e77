"""One section of a report: the family every section subclasses, and what a section produced.

A section is a `ReportSection` subclass that names itself (`key`, `title`), declares the
sections whose results it reads (`needs`) and fills in three steps: `applies` (the reason
it does not apply to this model, or None), `analyse` (a typed result; its JSON form,
`mechscope.serialize.to_json`, goes to report.json) and `render` (its page and figures).
`build_report` runs them in dependency order and turns what happened into a `Section`.

Example:
    >>> class Width(ReportSection[WidthResult]):
    ...     key, title = "width", "Layer widths"
    ...     needs = (UnitsSection,)
    ...     def analyse(self, ctx, deps):
    ...         units = deps.get(UnitsSection)          # UnitsResult | None
    ...         return WidthResult(...)
    ...     def render(self, ctx, result):
    ...         page = ctx.site.rel("width.html")
    ...         ctx.site.write_page(page, self.title, [...], crumbs=section_crumbs(ctx, self.title))
    ...         return Rendered(page, tag("p", "..."))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

from mechscope.data import DataBundle
from mechscope.errors import MechscopeError
from mechscope.report.context import ReportContext
from mechscope.report.html import Html, esc
from mechscope.report.site import Crumb

__all__ = [
    "ReportSection",
    "Rendered",
    "Deps",
    "NotApplicable",
    "Section",
    "skipped",
    "failed",
    "figure_path",
    "section_crumbs",
    "layer_page",
    "unit_page",
    "require_data",
]

R = TypeVar("R")


class NotApplicable(MechscopeError):
    """Raised by `ReportSection.analyse` when the model turns out not to fit; the message is the reason shown."""


@dataclass(frozen=True)
class Rendered:
    """What `ReportSection.render` wrote: the section's page and its card on the overview."""

    page: str  # site-relative path of the section's page
    summary: Html  # a few lines for the overview card


class ReportSection(Generic[R]):
    """One analysis of a report: whether it applies, its typed result, and its pages.

    Subclasses set `key`, `title` and `needs` and override `analyse` and `render` (and
    `applies` when the section does not fit every model). A section never reads another
    one's pages or shared state: what it needs arrives through `deps` in `analyse`.
    """

    key: ClassVar[str]  # stable identifier, e.g. "attribution": report.json's key and the page name
    title: ClassVar[str]  # heading shown to people
    needs: ClassVar[tuple[type[ReportSection[Any]], ...]] = ()  # sections whose results `analyse` reads

    def applies(self, ctx: ReportContext) -> str | None:
        """The reason the section does not apply to this model (shown on the overview), or None."""
        return None

    def analyse(self, ctx: ReportContext, deps: Deps) -> R:
        """Run the analysis; raise `NotApplicable` when the model turns out not to fit."""
        raise NotImplementedError(f"{type(self).__name__} must implement analyse()")

    def render(self, ctx: ReportContext, result: R) -> Rendered:
        """Write the section's page and figures from `result`."""
        raise NotImplementedError(f"{type(self).__name__} must implement render()")


class Deps:
    """The results of the sections a section `needs`: None for one that was skipped or failed."""

    def __init__(self, owner: type[ReportSection[Any]], results: Mapping[type[ReportSection[Any]], object]) -> None:
        self._owner = owner
        self._results = dict(results)

    def get(self, section: type[ReportSection[R]]) -> R | None:
        """The result of `section`, or None when it did not build (skipped or failed).

        Raises:
            LookupError: the asking section does not declare `section` in its `needs` (a
                programming error: the section is marked failed).
        """
        if section not in self._owner.needs:
            raise LookupError(f"section {self._owner.__name__} reads {section.__name__} without declaring it: "
                              f"add it to {self._owner.__name__}.needs.")
        return cast("R | None", self._results.get(section))


@dataclass(frozen=True)
class Section:
    """What a section produced: its page, or the reason it has none."""

    key: str  # stable identifier, e.g. "attribution"
    title: str  # heading shown to people
    page: str | None  # site-relative page path; None when the section does not apply
    summary: Html = field(default_factory=lambda: esc(""))  # a few lines for the overview card
    reason: str | None = None  # why the section does not apply
    data: dict[str, Any] = field(default_factory=dict)  # JSON of the section's result, written to report.json
    error: str | None = None  # "ExceptionType: message" when building the section raised

    @property
    def shown(self) -> bool:
        """True when the section has a page."""
        return self.page is not None

    def __json__(self) -> dict[str, Any]:
        """report.json's entry: key, title, page, reason, error, then the result's fields."""
        return {"key": self.key, "title": self.title, "page": self.page, "reason": self.reason, "error": self.error,
                **self.data}


def skipped(key: str, title: str, reason: str) -> Section:
    """A section that does not apply to this model, with the reason."""
    return Section(key=key, title=title, page=None, reason=reason)


def failed(key: str, title: str, err: Exception) -> Section:
    """A section whose analysis raised `err`: no page, the reason "failed: <ExceptionType: message>"."""
    text = " ".join(str(err).split()) or "(no message)"
    error = f"{type(err).__name__}: {text}"
    return Section(key=key, title=title, page=None, reason=f"failed: {error}", error=error)


def figure_path(ctx: ReportContext, name: str) -> tuple[str, Path]:
    """Site-relative path and file of a figure `fig/<name>`."""
    rel = ctx.site.rel("fig", name)
    return rel, ctx.site.path(rel)


def section_crumbs(ctx: ReportContext, title: str) -> list[Crumb]:
    """Breadcrumb of a section page: model overview > section."""
    return [(ctx.name, "index.html"), (title, None)]


def layer_page(ctx: ReportContext, layer: str, part: int = 0) -> str:
    """Site-relative path of a layer's page: `index.html` for its first part, `index-<part + 1>.html` after.

    A layer with many units lists them over several pages (parts), each with the same header.
    """
    return ctx.site.rel("layers", layer, "index.html" if part == 0 else f"index-{part + 1}.html")


def unit_page(ctx: ReportContext, layer: str, unit: int) -> str:
    """Site-relative path of a unit's page."""
    return ctx.site.rel("layers", layer, f"unit-{unit}.html")


def require_data(ctx: ReportContext) -> DataBundle:
    """The model's data, for a section whose `applies` already asked for it.

    Raises:
        NotApplicable: the report has no data.
    """
    if ctx.data is None:
        raise NotApplicable("no data was given.")
    return ctx.data

"""One section of a report: its page (when the analysis applies) or the reason it does not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mechscope.report.context import ReportContext
from mechscope.report.html import Html, esc
from mechscope.report.site import Crumb

__all__ = ["Section", "skipped", "failed", "figure_path", "section_crumbs", "SectionBuilder"]


@dataclass(frozen=True)
class Section:
    """What a section produced."""

    key: str  # stable identifier, e.g. "attribution"
    title: str  # heading shown to people
    page: str | None  # site-relative page path; None when the section does not apply
    summary: Html = field(default_factory=lambda: esc(""))  # a few lines for the overview card
    reason: str | None = None  # why the section does not apply
    data: dict[str, Any] = field(default_factory=dict)  # JSON summary written to report.json
    error: str | None = None  # "ExceptionType: message" when building the section raised

    @property
    def shown(self) -> bool:
        """True when the section has a page."""
        return self.page is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"key": self.key, "title": self.title, "page": self.page, "reason": self.reason, "error": self.error,
                **self.data}


SectionBuilder = Callable[[ReportContext], Section]
"""A function that computes one section's analyses and writes its page."""


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

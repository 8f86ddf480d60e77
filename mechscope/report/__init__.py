"""The microscope report: a static, self-contained site about one model, and an index over several.

`build_report` writes an overview, one page per section that applies (or the reason it
does not), one page per layer and one per unit; `build_index` links several reports;
`make_server` serves a folder on 127.0.0.1. The sections are `ReportSection` subclasses
(`SECTIONS` are the built-in ones): each says whether it applies, analyses the model into a
typed result (its JSON goes to report.json) and renders its page; a section declares the
sections whose results it reads in `needs`, and `build_report` runs them in that order.
Every name, label and text that comes from a model, a dataset or a user is HTML-escaped
(`mechscope.report.html`), and every file name is slugified and kept inside the output
folder (`mechscope.report.site`).
"""

from mechscope.report.build import build_report, is_report
from mechscope.report.config import ReportConfig
from mechscope.report.context import ReportContext
from mechscope.report.index import build_index
from mechscope.report.section import Deps, NotApplicable, Rendered, ReportSection
from mechscope.report.sections import SECTIONS
from mechscope.report.serve import make_server

__all__ = [
    "SECTIONS",
    "Deps",
    "NotApplicable",
    "Rendered",
    "ReportConfig",
    "ReportContext",
    "ReportSection",
    "build_index",
    "build_report",
    "is_report",
    "make_server",
]

"""The microscope report: a static, self-contained site about one model, and an index over several.

`build_report` writes an overview, one page per analysis that applies (or the reason it
does not), one page per layer and one per unit; `build_index` links several reports;
`make_server` serves a folder on 127.0.0.1. Every name, label and text that comes from a
model, a dataset or a user is HTML-escaped (`mechscope.report.html`), and every file name
is slugified and kept inside the output folder (`mechscope.report.site`).
"""

from mechscope.report.build import BUILDERS, REPORT_FILE, build_report
from mechscope.report.config import ReportConfig
from mechscope.report.context import ReportContext, unit_layers
from mechscope.report.index import build_index
from mechscope.report.section import Section
from mechscope.report.serve import HOST, make_server
from mechscope.report.site import Site, slugify

__all__ = [
    "BUILDERS",
    "HOST",
    "REPORT_FILE",
    "ReportConfig",
    "ReportContext",
    "Section",
    "Site",
    "build_index",
    "build_report",
    "make_server",
    "slugify",
    "unit_layers",
]

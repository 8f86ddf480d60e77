"""`mechscope report CHECKPOINT --out DIR`: the browsable report of a model."""

from __future__ import annotations

import json
import warnings

from mechscope.cli._options import CheckpointArg, FormatOpt, OutDirOpt, QuickOpt, checked_out
from mechscope.cli._output import OutputFormat, emit
from mechscope.errors import MechscopeError
from mechscope.report import REPORT_FILE, build_report
from mechscope.report.build import check_report_out

EXAMPLES = (
    "Examples:\n\n  mechscope report runs/digit-cnn --out report/digit-cnn\n\n"
    "  mechscope report runs/modular-mlp-mod2 --out report/mod2 --quick --format json\n\n"
    "  Open report/digit-cnn/index.html in a browser (no server needed), or: mechscope serve report/digit-cnn"
)


def report(checkpoint: CheckpointArg, out: OutDirOpt, quick: QuickOpt = False,
           fmt: FormatOpt = OutputFormat.text) -> None:
    """Build a static HTML report of a model: overview, sections, one page per layer and per unit."""
    with warnings.catch_warnings():  # failed sections are listed below, once
        warnings.filterwarnings("ignore", message="report section", category=RuntimeWarning)
        index = build_report(checkpoint, checked_out(out, check_report_out), quick=quick)
    summary = json.loads((index.parent / REPORT_FILE).read_text())
    shown = [s for s in summary["sections"] if s.get("page")]
    missing = [s for s in summary["sections"] if not s.get("page")]
    broken = [s for s in summary["sections"] if s.get("error")]
    lines = [f"report written: {index} ({summary['pages']} pages, {summary['seconds']['total']:.1f}s)"]
    lines += [f"  {s['title']}: {s['page']}" for s in shown]
    lines += [f"  {s['title']}: not shown ({s['reason']})" for s in missing]
    lines.append(f"open {index} in a browser")
    emit({"index": str(index), **summary}, fmt, "\n".join(lines))
    if broken and not shown:  # an overview of failures only: nothing could be built (exit 1)
        raise MechscopeError(f"no section of the report could be built ({len(broken)} failed); see {index}.")


"""`mechscope tour --out DIR`: train the seed articles' targets, analyse them, and write a report of each."""

from __future__ import annotations

from mechscope.atomic import check_output
from mechscope.cli._options import FormatOpt, ForceOpt, OutDirOpt, QuickOpt, checked_out
from mechscope.cli._output import OutputFormat, emit
from mechscope.recipes.tour import is_tour, run_tour

EXAMPLES = "Examples:\n\n  mechscope tour --out tour\n\n  mechscope tour --out tour --quick --format json"


def tour(out: OutDirOpt, quick: QuickOpt = False, force: ForceOpt = False, fmt: FormatOpt = OutputFormat.text) -> None:
    """Train every built-in target, run every analysis and write a browsable report of each into --out."""
    checked_out(out, lambda path: check_output(path, owned=is_tour, what="a mechscope tour"))
    summary = run_tour(out, quick=quick, force=force)
    lines = [f"tour written to {summary['out']} in {summary['seconds']:.0f}s"]
    for step in summary["steps"]:
        state = "reused" if step["reused"] else f"{step['seconds']:.1f}s"
        scores = ", ".join(f"{k}={v:.4g}" for k, v in step["metrics"].items() if isinstance(v, float))
        lines.append(f"  {step['name']:<34} {state:>8}  {scores}")
    if summary["index"]:
        lines.append(f"open {summary['index']} in a browser (no server needed)")
    emit(summary, fmt, "\n".join(lines))

"""An index page over several reports (the tour's front page), linking each model's report."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mechscope.report.build import REPORT_FILE
from mechscope.report.html import Html, link, paragraph, table, tag
from mechscope.report.site import Site
from mechscope.report.widgets import card, fmt

__all__ = ["build_index"]


def build_index(
    out_dir: str | os.PathLike[str],
    reports: Sequence[str | os.PathLike[str]],
    *,
    title: str = "mechscope tour",
    intro: str | None = None,
) -> Path:
    """Write `out_dir/index.html` linking every report folder in `reports` (each with index.html, report.json).

    Args:
        out_dir: Folder of the index page; the report folders usually lie below it.
        reports: Report folders written by `build_report`, in the order to list them.
        title: Page heading.
        intro: A paragraph under the heading.

    Returns:
        Path of the written index.html.
    """
    site = Site(out_dir, title=title)
    site.write_style()
    rows = []
    cards: list[Html] = []
    for folder in reports:
        path = Path(folder).resolve()
        meta = _read(path / REPORT_FILE)
        href = Path(os.path.relpath(path / "index.html", site.root)).as_posix()
        name = str(meta.get("name") or path.name)
        metrics = meta.get("metrics") or {}
        scores = ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in metrics.items()
                           if isinstance(v, (int, float)) and k.startswith("test"))
        sections = meta.get("sections") or []
        shown = [s for s in sections if s.get("page")]
        data = meta.get("data") or {}
        rows.append([link(href, name), str(meta.get("model_class", "?")), _data(data), scores or "-",
                     _finding(sections), ", ".join(str(s.get("title")) for s in shown) or "-"])
        links = [link(Path(os.path.relpath(path / str(s["page"]), site.root)).as_posix(), str(s.get("title")))
                 for s in shown]
        body = [paragraph(str(meta.get("model_class", "?")), " on ", _data(data)), paragraph(scores or "")]
        if links:
            body.append(tag("ul", *[tag("li", item) for item in links]))
        cards.append(card(name, tag("div", *body), href=href))
    body_html = [
        paragraph(intro or "Each model below was trained and analysed; open a report to browse its layers, units "
                  "and analyses."),
        tag("section", tag("h2", "Models"),
            table(["report", "model", "data", "held-out score", "a finding", "sections"], rows)),
        tag("section", tag("h2", "Reports"), tag("div", *cards, class_="cards")),
    ]
    return site.write_page("index.html", title, body_html, crumbs=[(title, None)])


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _data(spec: dict[str, Any]) -> str:
    kind = spec.get("kind")
    if kind == "modular":
        return f"(a {spec.get('operation', '+')} b) mod {spec.get('modulus')}"
    if kind == "function":
        return f"{spec.get('function')} of {spec.get('n_inputs', '?')} inputs"
    if kind == "digits":
        source = str(spec.get("source"))
        return {"digits": "8x8 digits (scikit-learn)", "mnist5k": "MNIST, 5,000 images"}.get(source, source)
    return str(kind or "-")


def _finding(sections: list[dict[str, Any]]) -> str:
    """One headline number or formula from the report's sections."""
    by_key = {str(s.get("key")): s for s in sections if s.get("page")}
    formula = by_key.get("formula", {}).get("simplified_formula")
    if formula:
        return str(formula)
    fourier = by_key.get("fourier")
    if fourier and fourier.get("key_frequencies") is not None:
        keys = ", ".join(str(k) for k in fourier["key_frequencies"]) or "none"
        return f"key frequencies {keys}"
    circuits = by_key.get("circuits")
    if circuits and isinstance(circuits.get("ablation"), dict) and circuits["ablation"].get("ratio") is not None:
        return f"ablating class detectors hurts {fmt(circuits['ablation']['ratio'])}x more than random channels"
    return "-"

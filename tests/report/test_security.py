from __future__ import annotations

import html

import torch

from tests.report.conftest import EVIL_LABELS, EVIL_LAYER, EVIL_TITLE


def _pages(root):
    return {p: p.read_text(encoding="utf-8") for p in root.rglob("*.html")}


def test_report_escapes_layer_names_labels_and_titles(site):
    pages = _pages(site)
    assert len(pages) > 30
    hostile = [EVIL_LAYER, EVIL_TITLE, *EVIL_LABELS, "<b>"]
    for path, text in pages.items():
        for raw in hostile:
            assert raw not in text, f"{raw!r} appears unescaped in {path}"
        assert "<script" not in text.lower(), f"a script tag in {path}"
        assert "onerror" not in text.replace("onerror=alert(2)&gt;", ""), f"an event handler in {path}"
    everything = "\n".join(pages.values())
    for raw in (EVIL_LAYER, EVIL_TITLE, *EVIL_LABELS):
        assert html.escape(raw, quote=True) in everything, f"{raw!r} is never shown (escaped)"


def test_report_slugifies_a_hostile_layer_into_one_folder(site):
    layers = sorted(p.name for p in (site / "evil" / "report" / "layers").iterdir())
    assert len(layers) == 2 and "relu2" in layers
    evil = [name for name in layers if name != "relu2"][0]
    assert evil.startswith("script-alert-1-script-") and "<" not in evil


def test_report_writes_nothing_outside_its_folder(built):
    assert built.outside == frozenset()


def test_report_leaves_the_model_unchanged(built):
    state = built.model.state_dict()
    assert all(torch.equal(built.state_before[k], v) for k, v in state.items())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in built.model.modules())

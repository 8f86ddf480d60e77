from __future__ import annotations

from mechscope.report import build_index


def test_build_index_links_every_report(site):
    text = (site / "index.html").read_text()
    for folder in ("evil", "mod2", "sum"):
        assert f'href="{folder}/report/index.html"' in text
    assert "modular mlp" in text and "tiny relu" in text


def test_build_index_tolerates_a_folder_without_report(tmp_path):
    (tmp_path / "empty").mkdir()
    index = build_index(tmp_path, [tmp_path / "empty"], title="x & y")
    assert "x &amp; y" in index.read_text()

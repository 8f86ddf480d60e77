from __future__ import annotations

from mechscope.report.widgets import colorbar, fmt, label_bar, thumb, value_bar


def test_colorbar_labels_its_range_and_escapes_the_label():
    out = colorbar("viridis", 0.0, 2.0, "a<b")
    assert "linear-gradient" in out and "a&lt;b" in out and ">0<" in out and ">2<" in out


def test_label_bar_widths_follow_the_counts_and_names_are_escaped():
    out = label_bar({0: 3, 2: 1}, ['"x"', "y", "R&D"])
    assert "width:75.00%" in out and "width:25.00%" in out
    assert "&quot;x&quot;: 3" in out and "R&amp;D: 1" in out


def test_value_bar_clips_and_signs():
    assert "width:100.0%" in value_bar(5.0, 2.0) and "neg" in value_bar(-1.0, 2.0, signed=True)
    assert "width:0.0%" in value_bar(float("nan"), 1.0)


def test_thumb_marks_the_receptive_field_box():
    out = thumb("a.png", "alt", "cap", href="u.html", box=(0.25, 0.0, 0.5, 1.0))
    assert 'href="u.html"' in out and "left:25.00%" in out and "height:100.00%" in out


def test_thumb_loads_lazily():
    assert '<img src="a.png" alt="alt" width="72" class="px" loading="lazy">' in thumb("a.png", "alt")


def test_fmt_reads_well():
    assert (fmt(0.123456), fmt(3), fmt(float("nan")), fmt(None)) == ("0.1235", "3", "n/a", "None")

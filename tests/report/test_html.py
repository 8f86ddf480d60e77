from __future__ import annotations

from mechscope.report.html import Html, esc, join, key_values, link, raw, table, tag


def test_tag_escapes_text_and_attributes():
    out = tag("p", '<script>"x" & y</script>', title='"><img src=x>')
    assert "<script>" not in out and "&lt;script&gt;&quot;x&quot; &amp; y" in out
    assert 'title="&quot;&gt;&lt;img src=x&gt;"' in out


def test_html_concatenation_escapes_plain_strings():
    combined = raw("<b>") + "<i>" + raw("</b>")
    assert isinstance(combined, Html) and combined == "<b>&lt;i&gt;</b>"
    assert ("<u>" + raw("<br>")) == "&lt;u&gt;<br>"


def test_nested_markup_is_not_escaped_twice():
    inner = link("a.html", "R&D")
    assert tag("li", inner) == '<li><a href="a.html">R&amp;D</a></li>'
    assert esc(esc("&")) == "&amp;"


def test_table_and_key_values_escape_cells_and_format_floats():
    out = table(["h<"], [["<td>", 0.123456789]]) + key_values([("k&", 2.0)])
    assert "&lt;td&gt;" in out and "0.1235" in out and "k&amp;" in out and "h&lt;" in out


def test_join_skips_none():
    assert join(["a", None, "<"], ", ") == "a, &lt;"

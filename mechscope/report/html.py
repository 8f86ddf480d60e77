"""Small HTML builders; every piece of text that goes in is escaped here."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "esc",
    "Html",
    "raw",
    "join",
    "tag",
    "link",
    "img",
    "image",
    "table",
    "key_values",
    "paragraph",
    "heading",
    "section",
    "missing",
]


class Html(str):
    """A string that is already safe HTML (built by this module); plain `str` is always escaped.

    Concatenation keeps the guarantee: `Html + str` escapes the `str` side.
    """

    def __add__(self, other: Any) -> Html:
        return Html(str.__add__(self, esc(other)))

    def __radd__(self, other: Any) -> Html:
        return Html(str.__add__(esc(other), self))


def esc(value: Any) -> Html:
    """Escape any value for use in HTML text or a quoted attribute (quotes included)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def raw(markup: str) -> Html:
    """Mark trusted markup written in this package as safe. Never pass user, model or data text."""
    return Html(markup)


def join(parts: Iterable[Any], sep: str = "") -> Html:
    """Concatenate pieces; plain values are escaped, Html pieces kept."""
    return Html(esc(sep).join(esc(p) for p in parts if p is not None))


def tag(name: str, *children: Any, **attrs: Any) -> Html:
    """`<name attrs>children</name>`; attribute values and text children are escaped."""
    attr = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"' for key, value in attrs.items() if value is not None
    )
    return Html(f"<{name}{attr}>{join(children)}</{name}>")


def link(href: str, text: Any, **attrs: Any) -> Html:
    """An anchor to a relative page inside the site."""
    return tag("a", text, href=href, **attrs)


def img(src: str, alt: Any, *, width: int | None = None, class_: str | None = None, lazy: bool = False) -> Html:
    """An `<img>` with escaped source and alternative text; `lazy` loads it only near the viewport."""
    extra = (f' width="{int(width)}"' if width else "") + (f' class="{esc(class_)}"' if class_ else "")
    extra += ' loading="lazy"' if lazy else ""
    return Html(f'<img src="{esc(src)}" alt="{esc(alt)}"{extra}>')


def image(src: str, alt: Any, *, caption: Any = None, width: int | None = None) -> Html:
    """A figure with an image and an optional caption."""
    return tag("figure", img(src, alt, width=width), tag("figcaption", caption) if caption is not None else None)


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], *, class_: str | None = None) -> Html:
    """A table; cells may be Html (links) or plain values (escaped; floats shown with 4 significant digits)."""
    head = tag("tr", *[tag("th", h) for h in header])
    body = [tag("tr", *[tag("td", _cell(c)) for c in row]) for row in rows]
    return tag("table", tag("thead", head), tag("tbody", *body), class_=class_)


def key_values(rows: Iterable[tuple[Any, Any]], *, class_: str = "kv") -> Html:
    """A two-column table of (name, value) rows."""
    body = [tag("tr", tag("th", key, scope="row"), tag("td", _cell(value))) for key, value in rows]
    return tag("table", tag("tbody", *body), class_=class_)


def paragraph(*children: Any, class_: str | None = None) -> Html:
    """A `<p>`."""
    return tag("p", *children, class_=class_)


def heading(level: int, text: Any, *, id_: str | None = None) -> Html:
    """`<h1>`..`<h4>`."""
    return tag(f"h{level}", text, id=id_)


def section(title: Any, *children: Any, id_: str | None = None) -> Html:
    """A titled `<section>`."""
    return tag("section", heading(2, title), *children, id=id_)


def missing(title: Any, reason: Any) -> Html:
    """A section that does not apply, saying why."""
    return tag("section", heading(2, title), paragraph("Not shown: ", reason, class_="missing"), class_="skipped")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value

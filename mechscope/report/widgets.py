"""Page building blocks beyond plain HTML: colour bars, label bars, thumbnails, figures, cards.

Colour bars are CSS gradients sampled from the same matplotlib colour maps the pictures
use (`mechscope.plots._style`), so a page's legend matches its thumbnails exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mechscope.plots._style import CATEGORICAL, plt
from mechscope.report.html import Html, esc, img, join, link, paragraph, raw, tag

__all__ = [
    "colorbar",
    "label_bar",
    "value_bar",
    "thumb",
    "figure",
    "card",
    "fmt",
    "category_colour",
    "bullets",
    "units_label",
    "joined",
]


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in rgba[:3])


def category_colour(index: int) -> str:
    """Hex colour of class `index` in the categorical map shared with the figures."""
    return _hex(plt.get_cmap(CATEGORICAL)(index % 10))


def colorbar(cmap: str, low: float, high: float, label: Any) -> Html:
    """A horizontal colour bar from `low` to `high` in the colour map `cmap`, with its label."""
    colours = plt.get_cmap(cmap)
    stops = ", ".join(_hex(colours(i / 10)) for i in range(11))
    bar = raw(f'<span class="cbar-ramp" style="background: linear-gradient(to right, {stops})"></span>')
    ticks = tag("span", tag("span", fmt(low)), tag("span", fmt((low + high) / 2)), tag("span", fmt(high)),
                class_="cbar-ticks")
    return tag("div", tag("span", label, class_="cbar-label"), tag("span", bar, ticks, class_="cbar-body"),
               class_="cbar", role="img", aria_label=f"colour scale {label}: {fmt(low)} to {fmt(high)}")


def label_bar(
    counts: Mapping[int, int], names: Sequence[str], *, legend: bool = True, counts_shown: bool = True
) -> Html:
    """A stacked bar of label counts (class index -> count), one colour per class, with a legend.

    With `counts_shown=False` only the legend is drawn (a colour key for several small bars).
    """
    total = sum(counts.values())
    if total == 0:
        return paragraph("no examples", class_="muted")
    segments = []
    keys = []
    for c, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n <= 0:
            continue
        share = 100.0 * n / total
        name = names[c] if c < len(names) else str(c)
        segments.append(raw(f'<span class="seg" style="width:{share:.2f}%;background:{category_colour(c)}" '
                            f'title="{esc(name)}: {n}"></span>'))
        keys.append(tag("li", raw(f'<span class="swatch" style="background:{category_colour(c)}"></span>'),
                          f"{name}: {n}" if counts_shown else name))
    if not counts_shown:
        return tag("ul", *keys, class_="legend")
    return tag("div", tag("div", *segments, class_="stack"), tag("ul", *keys, class_="legend") if legend else None,
               class_="labelbar" if legend else "labelbar small")


def value_bar(value: float, high: float, *, signed: bool = False) -> Html:
    """An inline bar whose length shows |value| / high (red positive, blue negative when signed)."""
    share = 0.0 if not high or not math.isfinite(value) else min(abs(value) / high, 1.0)
    colour = ("pos" if value >= 0 else "neg") if signed else "mag"
    return tag("span", raw(f'<span class="vbar-fill {colour}" style="width:{100 * share:.1f}%"></span>'),
               class_="vbar", title=fmt(value))


def thumb(
    src: str,
    alt: Any,
    caption: Any = None,
    *,
    href: str | None = None,
    box: tuple[float, float, float, float] | None = None,
    size: int = 72,
    class_: str = "thumb",
) -> Html:
    """A small picture with a caption, optionally a link and a highlighted box.

    Thumbnails load lazily (`loading="lazy"`), so a page with hundreds of them opens at once.

    Args:
        src: Relative image URL.
        alt: Alternative text.
        caption: Text under the picture.
        href: Relative page URL the picture links to.
        box: (left, top, width, height) as fractions of the picture: a receptive field drawn over it.
        size: Displayed width in CSS pixels.
        class_: CSS class of the figure.
    """
    picture = img(src, alt, width=size, class_="px", lazy=True)
    if box is not None:
        left, top, width, height = (100.0 * v for v in box)
        picture = tag("span", picture, raw(
            f'<span class="rf" style="left:{left:.2f}%;top:{top:.2f}%;width:{width:.2f}%;height:{height:.2f}%">'
            "</span>"), class_="boxed")
    if href is not None:
        picture = link(href, picture)
    return tag("figure", picture, tag("figcaption", caption) if caption is not None else None, class_=class_)


def figure(src: str, alt: Any, caption: Any = None) -> Html:
    """A full-width figure (a matplotlib PNG) with a caption."""
    return tag("figure", link(src, img(src, alt)), tag("figcaption", caption) if caption is not None else None,
               class_="plot")


def card(title: Any, body: Any, *, href: str | None = None, status: str = "ok") -> Html:
    """A summary card on the overview: a title (linked when there is a page), a few lines."""
    head = link(href, title) if href is not None else title
    return tag("div", tag("h3", head), body, class_=f"card {status}")


def fmt(value: Any) -> str:
    """Numbers for people: 4 significant digits, percentages left to callers."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def bullets(items: Sequence[Any]) -> Html:
    """An unordered list."""
    return tag("ul", *[tag("li", item) for item in items])


def units_label(n: int, word: str = "unit") -> str:
    """'1 unit', '5 units'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def joined(parts: Sequence[Any], sep: str = ", ") -> Html:
    """Join pieces (links or text) with a separator."""
    return join(parts, sep)


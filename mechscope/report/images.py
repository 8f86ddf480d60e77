"""Small pictures for pages (inputs, rendered units) and text for inputs that are not pictures.

Thumbnails are pixel images written by `mechscope.plots.images` (no figure, no axes): one PNG
per picture at its own resolution, scaled up in the page with pixelated rendering. Inputs share
one grey colour map over the data's value range, so every thumbnail on every page reads the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from mechscope.data import DataBundle
from mechscope.plots._style import IMAGE
from mechscope.plots.images import image_png_bytes
from mechscope.report.site import Site

__all__ = ["Picture", "picture_bytes", "save_picture", "input_range", "describe_input"]


@dataclass(frozen=True)
class Picture:
    """How pixel values map to colours: a colour map over [low, high]."""

    cmap: str = IMAGE  # colour map name
    low: float = 0.0  # value drawn with the map's first colour
    high: float = 1.0  # value drawn with its last colour


def picture_bytes(image: Tensor, style: Picture) -> bytes:
    """PNG bytes of one image (channel, height, width) or map (height, width).

    One channel (or any count but three) is drawn with the colour map, channels averaged;
    three channels are drawn as RGB scaled from [low, high].
    """
    return image_png_bytes(image, value_range=(style.low, style.high), cmap=style.cmap)


def save_picture(site: Site, rel: str, image: Tensor, style: Picture) -> str:
    """Write one picture into the site (atomically); return its site-relative path."""
    site.write_bytes(rel, picture_bytes(image, style))
    return rel


def input_range(data: DataBundle) -> tuple[float, float]:
    """Smallest and largest input value over the data (the grey scale of every thumbnail)."""
    x = data.x_test.float()
    low, high = float(x.min()), float(x.max())
    return (low, high) if high > low else (low, low + 1.0)


def describe_input(x: Tensor, data: DataBundle | None) -> str:
    """One input as short text: "3 + 5" for modular data, else its first values."""
    row = x.detach().cpu().reshape(-1)
    extras = data.extras if data is not None else {}
    if "modulus" in extras:
        m, op = int(extras["modulus"]), str(extras.get("operation", "+"))
        if row.numel() == 2 and not row.is_floating_point():
            return f"{int(row[0])} {op} {int(row[1])}"
        if row.numel() == 2 * m:
            return f"{int(row[:m].argmax())} {op} {int(row[m:].argmax())}"
    values = ", ".join(f"{float(v):.3g}" for v in row[:6])
    return f"({values}{', ...' if row.numel() > 6 else ''})"

"""Figures: one module per kind, sharing the style in `_style`.

Every `plot_*` function returns a `matplotlib.figure.Figure` and writes nothing; `save_figure`
writes one as PNG (atomically) and closes it. Pixel images that are not figures (one rendered
unit, one thumbnail) are written by `mechscope.plots.images`.

Example:
    >>> from mechscope.plots import save_figure
    >>> from mechscope.plots.circuits import plot_connections
    >>> save_figure(plot_connections(pair), "connections.png")
"""

from mechscope.plots._style import save_figure
from mechscope.plots.images import image_png_bytes, write_image_png, write_image_pngs

__all__ = ["save_figure", "image_png_bytes", "write_image_png", "write_image_pngs"]

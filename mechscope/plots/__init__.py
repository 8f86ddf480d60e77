"""Figures: one module per kind, sharing the style in `_style`."""

from mechscope.plots._style import save_figure

__all__ = ["save_figure"]

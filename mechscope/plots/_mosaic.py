"""Mosaic: many small pictures drawn as one image, for figures with dozens of thumbnails."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from mechscope.plots._style import plt

__all__ = ["Mosaic"]


class Mosaic:
    """A grid of equal-sized pictures as one image: one imshow is far cheaper than an axes per picture.

    Cells are `height x width` pixels with a gap to the right and a title band above; gaps are
    NaN, drawn in the background colour.
    """

    def __init__(self, rows: int, cols: int, height: int, width: int) -> None:
        self.rows, self.cols, self.height, self.width = rows, cols, height, width
        self.gap_x = max(1, round(width * 0.15))
        self.gap_y = max(1, round(height * 0.35), round(width * 0.2))  # room for a title line above each cell

    @property
    def aspect(self) -> float:
        """Height over width of one cell including its gaps."""
        return (self.height + self.gap_y) / (self.width + self.gap_x)

    def origin(self, row: int, col: int) -> tuple[float, float]:
        """Pixel coordinates (x, y) of a cell's top-left pixel."""
        return col * (self.width + self.gap_x), row * (self.height + self.gap_y) + self.gap_y

    def draw(
        self,
        ax: Axes,
        tiles: np.ndarray,
        *,
        cmap: str,
        vmin: float | None = None,
        vmax: float | None = None,
        titles: list[list[str]] | None = None,
        row_labels: list[str] | None = None,
    ) -> AxesImage:
        """Draw `tiles` (rows, cols, height, width; NaN = empty) with optional cell titles and row labels."""
        step_x, step_y = self.width + self.gap_x, self.height + self.gap_y
        canvas = np.full((self.rows * step_y, self.cols * step_x - self.gap_x), np.nan)
        frames = []
        for r in range(self.rows):
            for c in range(self.cols):
                tile = tiles[r, c]
                if np.all(np.isnan(tile)):
                    continue
                x, y = self.origin(r, c)
                canvas[y : y + self.height, x : x + self.width] = tile
                frames.append(Rectangle((x - 0.5, y - 0.5), self.width, self.height))
        colours = plt.get_cmap(cmap).with_extremes(bad="white")
        im = ax.imshow(canvas, cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor="0.6", linewidth=0.5))
        size = 7 if self.cols > 6 else 8
        for r, row in enumerate(titles or []):
            for c, text in enumerate(row):
                if text:
                    x, y = self.origin(r, c)
                    ax.text(x + (self.width - 1) / 2, y - 0.7, text, ha="center", va="bottom", fontsize=size)
        for r, text in enumerate(row_labels or []):
            ax.text(-0.8 - self.gap_x, self.origin(r, 0)[1] + (self.height - 1) / 2, text, ha="right",
                    va="center", fontsize=size + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        return im

"""Figures for feature visualisation: a labelled grid per layer, pre- vs post-softmax per class.

A layer of many units is drawn as one mosaic (a single image with unit numbers on its
axes) rather than one labelled panel per unit: a figure with 1,024 axes took a minute and
most of a gigabyte to draw. One small PNG per unit is a pixel image, not a figure: see
`mechscope.plots.images`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.image import AxesImage
from torch import Tensor

from mechscope.errors import DataError
from mechscope.featurevis.evidence import Evidence
from mechscope.plots._style import IMAGE, Figure, plt
from mechscope.plots.images import image_pixels

__all__ = ["plot_layer_grid", "plot_class_pairs", "MAX_PANELS"]

MAX_PANELS = 64
"""Most units `plot_layer_grid` draws as labelled panels; more are drawn as one mosaic."""


def plot_layer_grid(
    images: Tensor,
    *,
    title: str,
    evidence: Evidence | None = None,
    examples: Tensor | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    unit_label: str = "ch",
) -> Figure:
    """Draw every rendered unit of a layer in one grid, each panel labelled.

    Args:
        images: Rendered images (batch, channel, height, width), one per unit.
        title: Figure title, e.g. "relu2: channel objective".
        evidence: When given, each panel also shows activation / dataset max.
        examples: Best dataset example per unit (batch, channel, height, width), drawn
            under each rendered image.
        value_range: Pixel values mapped to black and white.
        unit_label: Prefix of each panel's label ("ch", "class", "unit").

    Returns:
        The figure; write it with `save_figure`.

    Raises:
        DataError: `images` is not a non-empty 4-d tensor.

    More than `MAX_PANELS` units are drawn as one mosaic of all images (unit numbers on its
    axes, the best examples in a second mosaic beside it) instead of a panel per unit.
    """
    _check_images(images, "images")
    n = images.shape[0]
    units = list(evidence.units) if evidence is not None else list(range(n))
    if n > MAX_PANELS:
        return _plot_mosaic(images, title=_grid_title(title, evidence), units=units, examples=examples,
                            value_range=value_range, unit_label=unit_label)
    cols = min(n, 8 if n > 10 else n)
    grid_rows = math.ceil(n / cols)
    per_unit = 2 if examples is not None else 1
    fig, axes = plt.subplots(
        grid_rows * per_unit,
        cols,
        figsize=(1.3 * cols + 1.3, 1.5 * grid_rows * per_unit + 1.0),
        squeeze=False,
        layout="constrained",
    )
    shown = None
    for i in range(grid_rows * cols):
        r, c = divmod(i, cols)
        ax = axes[r * per_unit, c]
        _blank(ax)
        if per_unit == 2:
            _blank(axes[r * per_unit + 1, c])
        if i >= n:
            continue
        shown = _show(ax, images[i], value_range)
        label = f"{unit_label} {units[i]}"
        if evidence is not None:
            ratio = evidence.ratio[i]
            label += "\nnever active" if math.isnan(ratio) else f"\n\u00d7{ratio:.2f}"
        ax.set_title(label, fontsize=8.5)
        if examples is not None:
            ex_ax = axes[r * per_unit + 1, c]
            _show(ex_ax, examples[i], value_range)
            ex_ax.set_title("best example", fontsize=7.5, color="0.35")
    fig.suptitle(_grid_title(title, evidence))
    if evidence is not None:
        fig.supxlabel("\u00d7r: activation of the rendered image / best dataset activation of the unit", fontsize=9)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        bar.set_label("pixel value")
    return fig


def plot_class_pairs(
    logit_images: Tensor,
    prob_images: Tensor,
    *,
    class_names: Sequence[str] | None = None,
    logit_evidence: Evidence | None = None,
    prob_evidence: Evidence | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """Draw per class the pre-softmax (logit) and post-softmax (probability) visualisations.

    Args:
        logit_images: (n_classes, channel, height, width) rendered for each class logit.
        prob_images: (n_classes, channel, height, width) rendered for each class probability.
        class_names: Column labels (default "0".."n-1").
        logit_evidence: When given, each logit panel shows its ratio to the dataset max.
        prob_evidence: When given, each probability panel shows the probability reached.
        value_range: Pixel values mapped to black and white.

    Returns:
        The figure; write it with `save_figure`.

    Raises:
        DataError: either set of images is not a non-empty 4-d tensor, or their shapes differ.
    """
    _check_images(logit_images, "logit_images")
    _check_images(prob_images, "prob_images")
    if logit_images.shape != prob_images.shape:
        raise DataError(
            f"logit_images {tuple(logit_images.shape)} and prob_images {tuple(prob_images.shape)} must match."
        )
    n = logit_images.shape[0]
    names = list(class_names) if class_names is not None else [str(k) for k in range(n)]
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n + 1.8, 3.9), squeeze=False, layout="constrained")
    shown = None
    for k in range(n):
        shown = _show(axes[0, k], logit_images[k], value_range)
        _show(axes[1, k], prob_images[k], value_range)
        _blank(axes[0, k])
        _blank(axes[1, k])
        axes[0, k].set_title(f"class {names[k]}" + _note(logit_evidence, k, "logit"), fontsize=8.5)
        axes[1, k].set_title(_note(prob_evidence, k, "prob").strip(), fontsize=8)
    axes[0, 0].set_ylabel("logit\n(pre-softmax)", fontsize=9)
    axes[1, 0].set_ylabel("probability\n(post-softmax)", fontsize=9)
    fig.suptitle("Class visualisations: maximise the logit (top) vs the softmax probability (bottom)")
    if logit_evidence is not None:
        fig.supxlabel("\u00d7r: logit of the rendered image / largest logit of the class in the dataset", fontsize=9)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, shrink=0.8, pad=0.02)
        bar.set_label("pixel value")
    return fig


def _note(evidence: Evidence | None, k: int, kind: str) -> str:
    if evidence is None:
        return ""
    if kind == "prob":
        return f"\np = {evidence.activation[k]:.4f}"
    ratio = evidence.ratio[k]
    return "" if math.isnan(ratio) else f"\n\u00d7{ratio:.2f}"


def _grid_title(title: str, evidence: Evidence | None) -> str:
    if evidence is None:
        return title
    defined = [r for r in evidence.ratio if not math.isnan(r)]
    return title + f"\n{sum(r >= 1 for r in defined)}/{len(defined)} units reach their best dataset activation"


def _plot_mosaic(
    images: Tensor,
    *,
    title: str,
    units: Sequence[int],
    examples: Tensor | None,
    value_range: tuple[float, float],
    unit_label: str,
) -> Figure:
    """All images tiled into one picture per kind (rendered, best examples), unit numbers on the axes."""
    n = images.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    panels = [("rendered", images)] + ([("best dataset example", examples)] if examples is not None else [])
    size = (min(4.0 + 0.35 * cols, 16.0) * len(panels), min(3.5 + 0.35 * rows, 18.0))
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False, layout="constrained")
    shown = None
    for ax, (name, pictures) in zip(axes[0], panels):
        tiles, (height, width) = _tile(pictures, cols, rows, value_range)
        rgb = tiles.ndim == 3
        cmap = None if rgb else matplotlib.colormaps[IMAGE].with_extremes(bad="white")
        shown = ax.imshow(tiles, cmap=cmap, vmin=value_range[0], vmax=value_range[1], interpolation="nearest")
        step = max(1, math.ceil(rows / 16))
        ax.set_yticks([r * (height + 1) + height / 2 for r in range(0, rows, step)],
                      [f"{unit_label} {units[r * cols]}" for r in range(0, rows, step)], fontsize=7)
        col_step = max(1, math.ceil(cols / 16))
        ax.set_xticks([c * (width + 1) + width / 2 for c in range(0, cols, col_step)],
                      [f"+{c}" for c in range(0, cols, col_step)], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{name}: {n} units, {cols} per row, read left to right", fontsize=9)
    fig.suptitle(title)
    fig.supxlabel(f"a row label is the first {unit_label} of its row; +c counts pictures along the row", fontsize=9)
    if shown is not None and images.shape[1] != 3:
        bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        bar.set_label("pixel value")
    return fig


def _tile(
    pictures: Tensor, cols: int, rows: int, value_range: tuple[float, float]
) -> tuple[np.ndarray, tuple[int, int]]:
    """(rows * (height + 1) - 1, cols * (width + 1) - 1[, 3]) array; gaps are NaN (grey) or white (RGB)."""
    first, _ = image_pixels(pictures[0], value_range=value_range)
    height, width = first.shape[:2]
    shape: tuple[int, ...] = (rows * (height + 1) - 1, cols * (width + 1) - 1) + first.shape[2:]
    tiles = np.full(shape, np.nan if first.ndim == 2 else 1.0, dtype=np.float64)
    for i in range(pictures.shape[0]):
        r, c = divmod(i, cols)
        array, _ = image_pixels(pictures[i], value_range=value_range)
        tiles[r * (height + 1): r * (height + 1) + height, c * (width + 1): c * (width + 1) + width] = array
    return tiles, (height, width)


def _show(ax: plt.Axes, image: Tensor, value_range: tuple[float, float]) -> AxesImage:
    array, cmap = image_pixels(image, value_range=value_range)
    return ax.imshow(array, cmap=cmap, vmin=value_range[0], vmax=value_range[1], interpolation="nearest")


def _blank(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _check_images(images: Tensor, name: str) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise DataError(f"{name} must be a non-empty (batch, channel, height, width) tensor, got {shape}.")

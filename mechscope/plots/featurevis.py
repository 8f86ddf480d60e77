"""Figures for feature visualisation: a labelled grid per layer, pre- vs post-softmax per class."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.image import AxesImage
from torch import Tensor

from mechscope.atomic import owned_png, write_file
from mechscope.errors import DataError
from mechscope.featurevis.evidence import Evidence
from mechscope.plots._style import IMAGE, PNG_METADATA, plt, save_figure

__all__ = ["plot_layer_grid", "plot_class_pairs", "save_unit_image"]


def plot_layer_grid(
    images: Tensor,
    path: str | os.PathLike[str],
    *,
    title: str,
    evidence: Evidence | None = None,
    examples: Tensor | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    unit_label: str = "ch",
) -> Path:
    """Save every rendered unit of a layer in one grid, each panel labelled.

    Args:
        images: Rendered images (batch, channel, height, width), one per unit.
        path: PNG file to write.
        title: Figure title, e.g. "relu2: channel objective".
        evidence: When given, each panel also shows activation / dataset max.
        examples: Best dataset example per unit (batch, channel, height, width), drawn
            under each rendered image.
        value_range: Pixel values mapped to black and white.
        unit_label: Prefix of each panel's label ("ch", "class", "unit").

    Returns:
        The written path.
    """
    _check_images(images, "images")
    n = images.shape[0]
    units = list(evidence.units) if evidence is not None else list(range(n))
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
    if evidence is not None:
        defined = [r for r in evidence.ratio if not math.isnan(r)]
        title += f"\n{sum(r >= 1 for r in defined)}/{len(defined)} units reach their best dataset activation"
    fig.suptitle(title)
    if evidence is not None:
        fig.supxlabel("\u00d7r: activation of the rendered image / best dataset activation of the unit", fontsize=9)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes, shrink=0.6, pad=0.02)
        bar.set_label("pixel value")
    return save_figure(fig, path)


def plot_class_pairs(
    logit_images: Tensor,
    prob_images: Tensor,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    logit_evidence: Evidence | None = None,
    prob_evidence: Evidence | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Path:
    """Save per class the pre-softmax (logit) and post-softmax (probability) visualisations.

    Args:
        logit_images: (n_classes, channel, height, width) rendered for each class logit.
        prob_images: (n_classes, channel, height, width) rendered for each class probability.
        path: PNG file to write.
        class_names: Column labels (default "0".."n-1").
        logit_evidence: When given, each logit panel shows its ratio to the dataset max.
        prob_evidence: When given, each probability panel shows the probability reached.
        value_range: Pixel values mapped to black and white.

    Returns:
        The written path.
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
    return save_figure(fig, path)


def save_unit_image(
    image: Tensor, path: str | os.PathLike[str], *, value_range: tuple[float, float] = (0.0, 1.0)
) -> Path:
    """Write one rendered image (channel, height, width) as a PNG, atomically.

    Raises:
        OutputError: `path` holds a file mechscope did not write, or the OS refused.
    """
    array, cmap = _array(image, value_range)
    return write_file(
        path,
        lambda tmp: plt.imsave(tmp, array, cmap=cmap, vmin=value_range[0], vmax=value_range[1], format="png",
                               metadata=PNG_METADATA),
        owned=owned_png,
        what="a figure",
    )


def _note(evidence: Evidence | None, k: int, kind: str) -> str:
    if evidence is None:
        return ""
    if kind == "prob":
        return f"\np = {evidence.activation[k]:.4f}"
    ratio = evidence.ratio[k]
    return "" if math.isnan(ratio) else f"\n\u00d7{ratio:.2f}"


def _array(image: Tensor, value_range: tuple[float, float]) -> tuple[np.ndarray, str | None]:
    """Grey images keep their values (the colour map spans value_range); RGB is scaled to [0, 1]."""
    low, high = value_range
    pixels = image.detach().float().cpu()
    if pixels.shape[0] == 3:
        return np.transpose(((pixels - low) / (high - low)).clamp(0, 1).numpy(), (1, 2, 0)), None
    return pixels.mean(0).numpy(), IMAGE  # one channel, or the channel mean of other counts


def _show(ax: plt.Axes, image: Tensor, value_range: tuple[float, float]) -> AxesImage:
    array, cmap = _array(image, value_range)
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

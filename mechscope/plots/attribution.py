"""Figures for attribution maps: overlays on the images, deletion/insertion curves, sanity curves."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from torch import Tensor

from mechscope.attribution.faithfulness import RANDOM, FaithfulnessResult
from mechscope.attribution.sanity import SanityResult
from mechscope.errors import DataError
from mechscope.plots._style import CATEGORICAL, DIVERGING, IMAGE, SEQUENTIAL, Figure, plt

__all__ = ["plot_attribution_grid", "plot_perturbation_curves", "plot_sanity_curves"]

_CELL = 1.15  # inches per thumbnail
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def plot_attribution_grid(
    images: Tensor | np.ndarray,
    maps: Mapping[str, Tensor | np.ndarray],
    *,
    row_labels: Sequence[str] | None = None,
    title: str = "Attribution maps over their images",
) -> Figure:
    """Draw a grid: one row per image, the image then each method's map with the image outlined on it.

    Each map is divided by its own largest magnitude, so every colorbar reads 0..1
    (non-negative methods, sequential colours) or -1..1 (signed methods, diverging colours).
    The image is overlaid as a contour at half its intensity range, so map colours stay exact.

    Args:
        images: (batch, channel, height, width) or (batch, height, width), values in [0, 1].
        maps: Method label -> maps (batch, height, width).
        row_labels: Text left of each row, e.g. "label 3, predicted 3".
        title: Figure title.

    Returns:
        The figure; write it with `save_figure`.
    """
    pictures = _grey(images)
    arrays = {label: _numpy(value) for label, value in maps.items()}
    for label, values in arrays.items():
        if values.shape != pictures.shape:
            raise DataError(
                f"maps of {label!r} have shape {values.shape}; they must match the images, {pictures.shape} "
                "(batch, height, width): attribute the same images you plot."
            )
    if row_labels is not None and len(row_labels) != pictures.shape[0]:
        raise DataError(f"need one row label per image ({pictures.shape[0]}); got {len(row_labels)}.")
    n_rows, n_cols = pictures.shape[0], len(arrays) + 1
    fig, axes = plt.subplots(
        n_rows + 1,
        n_cols,
        figsize=(_CELL * n_cols + 1.2, _CELL * (n_rows + 0.35) + 1.0),
        gridspec_kw={"height_ratios": [1.0] * n_rows + [0.12]},
        squeeze=False,
        layout="compressed",
    )
    for row in range(n_rows):
        ax = axes[row, 0]
        ax.imshow(pictures[row], cmap=IMAGE, vmin=0.0, vmax=1.0, interpolation="nearest")
        _bare(ax)
        if row_labels is not None:
            ax.set_ylabel(row_labels[row], fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
    axes[0, 0].set_title("input", fontsize=10)
    for col, (label, values) in enumerate(arrays.items(), start=1):
        signed = bool((values < 0).any())
        cmap = DIVERGING if signed else SEQUENTIAL
        norm = Normalize(-1.0, 1.0) if signed else Normalize(0.0, 1.0)
        outline = "black" if signed else "white"
        for row in range(n_rows):
            ax = axes[row, col]
            peak = float(np.abs(values[row]).max())
            shown = values[row] / peak if peak > 0 else values[row]
            ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
            if pictures[row].max() > pictures[row].min():
                level = 0.5 * float(pictures[row].max() + pictures[row].min())
                ax.contour(pictures[row], levels=[level], colors=outline, linewidths=0.9)
            _bare(ax)
        axes[0, col].set_title(textwrap.fill(label, 11), fontsize=10)
        cax = axes[n_rows, col]
        cax.axis("off")
        inner = cax.inset_axes((0.12, 0.45, 0.76, 0.55))
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=inner, orientation="horizontal")
        bar.set_ticks([-1.0, 0.0, 1.0] if signed else [0.0, 0.5, 1.0])
        bar.ax.tick_params(labelsize=8)
    axes[n_rows, 0].axis("off")
    axes[n_rows, 0].text(1.0, 0.7, "map / max |map|", ha="right", va="center", fontsize=9,
                         transform=axes[n_rows, 0].transAxes)
    fig.suptitle(title)
    return fig


def plot_perturbation_curves(result: FaithfulnessResult) -> Figure:
    """Draw the deletion and insertion curves of every method beside the random-map baseline."""
    fractions = np.asarray(result.fractions)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    panels = (
        (axes[0], result.deletion, result.deletion_auc, "Deletion: most important pixels removed first",
         "fraction of pixels deleted", "lower area = more faithful"),
        (axes[1], result.insertion, result.insertion_auc, "Insertion: most important pixels restored first",
         "fraction of pixels inserted", "higher area = more faithful"),
    )
    colours = plt.get_cmap(CATEGORICAL)
    for ax, curves, areas, panel_title, xlabel, hint in panels:
        methods = [label for label in curves if label != RANDOM]
        for i, label in enumerate(methods):
            twin = _same_as(curves, label)
            note = f", same as {twin}" if twin else ""
            ax.plot(fractions, curves[label], color=colours(i % 10), lw=1.8, ls=":" if twin else "-",
                    label=f"{label} (AUC {areas[label]:.3f}{note})")
        ax.plot(fractions, curves[RANDOM], color="black", ls="--", lw=1.8,
                label=f"random map (AUC {areas[RANDOM]:.3f})")
        ax.set_title(f"{panel_title}\n({hint})")
        ax.set_xlabel(xlabel)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right" if curves is result.deletion else "lower right")
    axes[0].set_ylabel("probability of the target class")
    fig.suptitle(f"Faithfulness of attribution maps (mean over {result.n_images} images)")
    fig.tight_layout()
    return fig


def plot_sanity_curves(result: SanityResult) -> Figure:
    """Draw Spearman correlation with the trained model's maps against cascading randomisation."""
    steps = ["none (trained)"] + [f"{name}" for name in result.steps]
    x = np.arange(len(steps))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(steps) + 3.5), 4.8))
    colours = plt.get_cmap(CATEGORICAL)
    n_methods = len(result.spearman)
    for i, (label, values) in enumerate(result.spearman.items()):
        mean = np.array([1.0] + list(values))
        std = np.array([0.0] + list(result.spearman_std[label]))
        verdict = "pass" if result.passes[label] else "FAIL"
        twin = _same_as(result.spearman, label)
        note = f"mean {np.mean(values):.2f}, {verdict}" + (f", same as {twin}" if twin else "")
        dodge = 0.06 * (i - (n_methods - 1) / 2)  # spread the error bars of one step apart
        ax.errorbar(x + dodge, mean, yerr=std, fmt=_MARKERS[i % len(_MARKERS)],
                    ls="-" if result.passes[label] else "--",
                    color=colours(i % 10), lw=1.6, ms=5, capsize=2, elinewidth=0.8,
                    label=f"{label} ({note})")
    ax.axhline(result.threshold, color="grey", lw=1, ls=":", label=f"pass: mean over steps < {result.threshold:g}")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xticks(x, steps, rotation=20)
    ax.set_xlabel("layers re-initialised so far (cumulative, from the logits down)")
    ax.set_ylabel("Spearman rank correlation\nof |map| with the trained map")
    ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(
        f"Sanity check: cascading parameter randomisation ({result.n_images} images; bars = ±1 std over images)\n"
        "a map that explains the learned model must change when its weights are destroyed"
    )
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _same_as(curves: Mapping[str, Sequence[float]], label: str) -> str | None:
    """The first earlier curve identical to `label`'s (CAM and Grad-CAM coincide on GAP models)."""
    mine = np.asarray(curves[label])
    for other, values in curves.items():
        if other == label:
            return None
        if np.allclose(mine, np.asarray(values), atol=1e-6, rtol=0):
            return other
    return None


def _numpy(value: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _grey(images: Tensor | np.ndarray) -> np.ndarray:
    """Images as (batch, height, width) for display: channel mean of multi-channel images."""
    array = _numpy(images)
    if array.ndim == 4:
        array = array.mean(axis=1)
    return np.clip(array, 0.0, 1.0)

"""Patching heatmaps (layer x cell), attribution patching beside exact patching, the logit lens and
attention patterns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mechscope.lens.direct import LogitAttribution
from mechscope.lens.logit_lens import LogitLens
from mechscope.patching.activation import PatchingResult
from mechscope.patching.attribution import PatchingComparison
from mechscope.plots._style import DIVERGING, SEQUENTIAL, Figure, plt

__all__ = ["plot_patching", "plot_patching_comparison", "plot_logit_lens", "plot_logit_attribution",
           "plot_attention"]


def plot_patching(result: PatchingResult, *, cell_labels: Sequence[str] | None = None) -> Figure:
    """Heatmap of the recovered fraction per (layer, cell), colour limits symmetric around 0."""
    fig, ax = plt.subplots(figsize=(3.0 + 0.55 * result.values.shape[1], 1.6 + 0.45 * len(result.layers)),
                           layout="constrained")
    _heatmap(fig, ax, result.values, result.layers, cell_labels, _cell_word(result))
    ax.set_title(f"{_method(result)} patching ({result.direction}): recovered fraction of {result.metric}")
    return fig


def plot_patching_comparison(comparison: PatchingComparison, *, cell_labels: Sequence[str] | None = None) -> Figure:
    """Exact patching, the attribution estimate, and their difference, side by side."""
    exact = comparison.exact
    width = 1.8 + 0.55 * exact.values.shape[1]
    fig, axes = plt.subplots(1, 3, figsize=(2.5 + 3 * width, 1.8 + 0.45 * len(exact.layers)), squeeze=False,
                             layout="constrained")
    word = _cell_word(exact)
    for i, (ax, values, title) in enumerate(zip(axes[0], (exact.values, comparison.approx.values, comparison.error),
                                                ("exact", "attribution estimate", "estimate - exact"), strict=True)):
        _heatmap(fig, ax, values, exact.layers if i == 0 else [""] * len(exact.layers), cell_labels, word)
        ax.set_title(title)
    fig.suptitle(f"Attribution patching against exact patching (max error {comparison.max_error:.3f})")
    return fig


def plot_logit_lens(lens: LogitLens, *, example: int | None = None) -> Figure:
    """Answer rank (log colour) and probability per (layer, position); mean over examples unless `example`."""
    ranks = lens.rank.double() if example is None else lens.rank[:, example: example + 1].double()
    probs = lens.probability if example is None else lens.probability[:, example: example + 1]
    fig, axes = plt.subplots(1, 2, figsize=(6 + 0.8 * ranks.shape[2], 1.8 + 0.45 * len(lens.layers)), squeeze=False,
                             layout="constrained")
    for ax, values, title, cmap, vmin in (
        (axes[0, 0], torch.log10(1 + ranks.mean(dim=1)), "log10(1 + rank) of the answer", SEQUENTIAL + "_r", 0.0),
        (axes[0, 1], probs.double().mean(dim=1), "probability of the answer", SEQUENTIAL, 0.0),
    ):
        image = ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, aspect="auto")
        ax.set_yticks(range(len(lens.layers)), lens.layers)
        ax.set_xticks(range(values.shape[1]))
        ax.set_xlabel("position")
        ax.set_title(title)
        fig.colorbar(image, ax=ax)
    fig.suptitle("Logit lens: the residual stream read through the unembedding")
    return fig


def plot_logit_attribution(dla: LogitAttribution) -> Figure:
    """Mean direct contribution of each component to the logit (difference), as bars."""
    means = dla.contributions.double().mean(dim=0).numpy()
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.3 * len(dla.labels)), layout="constrained")
    colours = plt.get_cmap(DIVERGING)(np.where(means >= 0, 0.85, 0.15))
    ax.barh(range(len(means)), means, color=colours)
    ax.set_yticks(range(len(means)), dla.labels)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"mean contribution (logit {float(dla.logit.double().mean()):.2f})")
    ax.set_title("Direct logit attribution")
    return fig


def plot_attention(pattern: Tensor, *, tokens: Sequence[str] | None = None, title: str = "Attention") -> Figure:
    """One heatmap per head of a pattern (head, query, key) in [0, 1]."""
    if pattern.dim() != 3:
        raise ValueError(f"pattern must be (head, query, key), got {tuple(pattern.shape)}")
    heads, queries, keys = pattern.shape
    fig, axes = plt.subplots(1, heads, figsize=(1.5 + (1.2 + 0.35 * keys) * heads, 1.6 + 0.35 * queries),
                             squeeze=False, layout="constrained")
    image = None
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(pattern[h].float().numpy(), cmap=SEQUENTIAL, vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}")
        labels = list(tokens) if tokens is not None else [str(i) for i in range(keys)]
        ax.set_xticks(range(keys), labels[:keys])
        ax.set_yticks(range(queries), labels[:queries] if h == 0 else [""] * queries)
        ax.set_xlabel("key")
    axes[0, 0].set_ylabel("query")
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]))
    fig.suptitle(title)
    return fig


def _heatmap(fig: Figure, ax: plt.Axes, values: Tensor, layers: Sequence[str], labels: Sequence[str] | None,
             word: str) -> None:
    data = values.double().numpy()
    finite = np.abs(data[np.isfinite(data)])
    limit = max(1.0, float(finite.max())) if finite.size else 1.0
    image = ax.imshow(np.ma.masked_invalid(data), cmap=DIVERGING, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks(range(len(layers)), list(layers))
    ax.set_xticks(range(data.shape[1]), list(labels) if labels is not None else [str(i) for i in range(data.shape[1])])
    ax.set_xlabel(word)
    if data.shape[0] * data.shape[1] <= 120:
        for (i, j), value in np.ndenumerate(data):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(value) > 0.6 * limit else "black")
    fig.colorbar(image, ax=ax)


def _cell_word(result: PatchingResult) -> str:
    return {"pos": "position", "head": "head", "unit": "unit"}.get(str(result.along), f"index on axis {result.along}")


def _method(result: PatchingResult) -> str:
    return {"exact": "Activation", "attribution": "Attribution", "path": "Path"}.get(result.method, result.method)

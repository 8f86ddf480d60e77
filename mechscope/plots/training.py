"""Training curves: loss (log scale) and accuracy against epoch or step, from a checkpoint's history."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mechscope.errors import DataError
from mechscope.plots._style import CATEGORICAL, plt, save_figure

__all__ = ["plot_training_curves", "curve_keys"]


def curve_keys(history: Sequence[Mapping[str, float]]) -> tuple[str, list[str], list[str]]:
    """The x key ("step" or "epoch"), the loss-like keys and the accuracy keys of a history."""
    if not history:
        raise DataError("the training history is empty: nothing to plot.")
    first = history[0]
    x_key = "step" if "step" in first else "epoch" if "epoch" in first else ""
    numeric = [k for k, v in first.items() if k != x_key and isinstance(v, (int, float))]
    accuracy = [k for k in numeric if "accuracy" in k]
    losses = [k for k in numeric if k not in accuracy]
    return x_key, losses, accuracy


def plot_training_curves(history: Sequence[Mapping[str, float]], path: str | os.PathLike[str], *, title: str) -> Path:
    """Save loss-like curves (log scale) and accuracy curves over training.

    Args:
        history: One record per epoch or logged step, e.g. {"epoch": 3, "train_loss": 0.1,
            "train_accuracy": 0.98}.
        path: PNG file to write.
        title: Figure title.
    """
    x_key, losses, accuracy = curve_keys(history)
    xs = [float(r.get(x_key, i + 1)) for i, r in enumerate(history)] if x_key else list(range(1, len(history) + 1))
    panels = [p for p in (losses, accuracy) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 3.8), squeeze=False)
    colours = plt.get_cmap(CATEGORICAL)
    for ax, keys in zip(axes[0], panels):
        is_loss = keys is losses
        for i, key in enumerate(keys):
            values = [float(r.get(key, math.nan)) for r in history]
            if is_loss:
                values = [max(v, 1e-16) if math.isfinite(v) else math.nan for v in values]
            ax.plot(xs, values, color=colours(i), label=key.replace("_", " "), marker="o" if len(xs) <= 30 else None,
                    markersize=3)
        if is_loss and all(float(r.get(k, 1.0)) >= 0 for r in history for k in keys):
            ax.set_yscale("log")
        ax.set_ylabel("loss / error (log scale)" if is_loss else "accuracy")
        if not is_loss:
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(x_key or "record")
        ax.set_title("Loss" if is_loss else "Accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)

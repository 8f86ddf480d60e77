"""Training curves: loss (log scale) and accuracy against epoch or step, from a checkpoint's history."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mechscope.errors import DataError
from mechscope.plots._style import CATEGORICAL, Figure, plt

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


def plot_training_curves(history: Sequence[Mapping[str, float]], *, title: str) -> Figure:
    """Draw loss-like curves (log scale) and accuracy curves over training.

    Args:
        history: One record per epoch or logged step, e.g. {"epoch": 3, "train_loss": 0.1,
            "train_accuracy": 0.98}.
        title: Figure title.

    Returns:
        One panel of loss-like curves and one of accuracy curves (either only when the history has none
        of the other); write it with `save_figure`.

    Raises:
        DataError: `history` is empty.
    """
    x_key, losses, accuracy = curve_keys(history)
    xs = [float(r.get(x_key, i + 1)) for i, r in enumerate(history)] if x_key else list(range(1, len(history) + 1))
    panels = [p for p in (losses, accuracy) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 3.8), squeeze=False)
    colours = plt.get_cmap(CATEGORICAL)
    for ax, keys in zip(axes[0], panels):
        is_loss = keys is losses
        series = {key: [float(r.get(key, math.nan)) for r in history] for key in keys}
        use_log = is_loss and all(v >= 0 for values in series.values() for v in values if math.isfinite(v))
        for i, (key, values) in enumerate(series.items()):
            if use_log:  # a log axis cannot show 0: exact zeros are drawn at the float64 resolution of a loss
                values = [max(v, 1e-16) if math.isfinite(v) else math.nan for v in values]
            ax.plot(xs, values, color=colours(i), label=key.replace("_", " "), marker="o" if len(xs) <= 30 else None,
                    markersize=3)
        if use_log:
            ax.set_yscale("log")
        ax.set_ylabel(("loss / error (log scale)" if use_log else "loss / error") if is_loss else "accuracy")
        if not is_loss:
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(x_key or "record")
        ax.set_title("Loss" if is_loss else "Accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig

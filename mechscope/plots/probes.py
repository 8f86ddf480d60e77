"""Probe figures: accuracy with its controls, accuracy by layer, learned kernels, kernel-filtered images.

Each function returns a matplotlib Figure; write it with `save_figure(fig, path)`.

Example:
    >>> save_figure(plot_kernel_responses(probe.kernel_responses(images), titles), "responses.png")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from mechscope.errors import DataError
from mechscope.plots._style import CATEGORICAL, DIVERGING, Figure, plt
from mechscope.probes.by_layer import LayerProbeTable
from mechscope.probes.rigor import ProbeReport

__all__ = ["plot_probe_report", "plot_accuracy_by_layer", "plot_probe_kernels", "plot_kernel_responses"]


def plot_probe_report(report: ProbeReport) -> Figure:
    """Bars per head (and all heads): probe, untrained copy, control task, majority baseline.

    Error bars are standard deviations over the seeds.
    """
    names = list(report.heads) + ["all heads"]
    task = [report.heads[k] for k in report.heads] + [report.all_heads_accuracy]
    task_err = [report.heads_std[k] for k in report.heads] + [report.all_heads_std]
    control = [report.control_heads[k] for k in report.heads] + [report.control_accuracy]
    baseline = [report.baseline_heads[k] for k in report.heads] + [report.baseline_accuracy]
    series: list[tuple[str, list[float], list[float] | None]] = [("probe", task, task_err)]
    if report.untrained_heads is not None and report.untrained_accuracy is not None:
        untrained = [report.untrained_heads[k] for k in report.heads] + [report.untrained_accuracy]
        series.append(("untrained copy", untrained, None))
    series += [("control task", control, None), ("majority baseline", baseline, None)]

    colours = plt.get_cmap(CATEGORICAL).colors  # type: ignore[attr-defined]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names) + 2), 4.2))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    for i, (label, values, errors) in enumerate(series):
        pos = x + (i - (len(series) - 1) / 2) * width
        ax.bar(pos, values, width, yerr=errors, capsize=3, label=label, color=colours[i])
        for p, v in zip(pos, values):
            ax.text(p, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("probed label (head)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(
        f"Probe accuracy vs. controls (mean +/- std over {len(report.seeds)} seeds, split by {report.split})"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.tight_layout()
    return fig


def plot_accuracy_by_layer(table: LayerProbeTable) -> Figure:
    """One panel per label: held-out score by layer, with control, untrained copy and baseline."""
    n = len(table.labels)
    panel_width = max(3.6, 1.5 + 0.6 * len(table.layers))
    fig, axes = plt.subplots(1, n, figsize=(panel_width * n, 4.2), squeeze=False, sharey=True)
    colours = plt.get_cmap(CATEGORICAL).colors  # type: ignore[attr-defined]
    x = np.arange(len(table.layers))
    for ax, label in zip(axes[0], table.labels):
        rows = [table.get(layer, label) for layer in table.layers]
        # Small horizontal offsets keep coinciding series (e.g. all at 1.0) visible side by side.
        ax.errorbar(x - 0.1, [r.score for r in rows], yerr=[r.score_std for r in rows], marker="o", capsize=3,
                    color=colours[0], label="probe", zorder=4)
        if all(r.untrained is not None for r in rows):
            ax.plot(x, [r.untrained for r in rows], ":s", color=colours[1], label="untrained copy", zorder=3)
        ax.plot(x + 0.1, [r.control for r in rows], "--^", color=colours[2], label="control task", zorder=3)
        ax.plot(x, [r.baseline for r in rows], "-", color="0.5", label="majority baseline", zorder=2)
        ax.set_xticks(x, table.layers, rotation=45, ha="right")
        ax.set_xlabel("layer")
        ax.set_title(f"label {label!r}")
        ax.set_ylim(min(0.0, *[r.baseline for r in rows]) - 0.02, 1.08)
        ax.grid(alpha=0.3)
    kind = table.rows[0].kind if table.rows else "categorical"
    axes[0][0].set_ylabel("held-out accuracy" if kind == "categorical" else "held-out R^2")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    fig.suptitle(f"Probe accuracy by layer ({_short(table.probe)}, mean +/- std over {len(table.seeds)} seeds)")
    fig.tight_layout()
    return fig


def plot_probe_kernels(kernels: Tensor) -> Figure:
    """Draw a convolutional probe's learned kernels (n_kernels, channel, r, c), one panel each.

    Values are written in the cells of kernels of at most 36 weights; the colour scale is
    symmetric about 0.

    Raises:
        DataError: `kernels` is neither 3-d nor 4-d.
    """
    values = _numpy(kernels)
    if values.ndim == 3:
        values = values[:, None]
    if values.ndim != 4:
        raise DataError(f"kernels must have shape (n_kernels, channel, r, c), got {tuple(kernels.shape)}.")
    k, channels, rows, cols = values.shape
    limit = float(np.abs(values).max()) or 1.0
    fig, axes = plt.subplots(
        channels, k, figsize=(1.6 + 1.9 * k, 0.9 + 1.9 * channels), squeeze=False, layout="constrained"
    )
    image = None
    for c in range(channels):
        for i in range(k):
            ax = axes[c][i]
            image = ax.imshow(values[i, c], cmap=DIVERGING, vmin=-limit, vmax=limit)
            if rows * cols <= 36:
                for (r, q), v in np.ndenumerate(values[i, c]):
                    ax.text(q, r, f"{v:.2f}", ha="center", va="center", fontsize=9,
                            color="white" if abs(v) > 0.6 * limit else "black")
            ax.set_xticks(range(cols))
            ax.set_yticks(range(rows))
            ax.set_title(f"kernel {i + 1}" + (f", channel {c}" if channels > 1 else ""))
            ax.set_xlabel("column")
            if i == 0:
                ax.set_ylabel("row")
    fig.suptitle("Learned probe kernels")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="weight")
    return fig


def plot_kernel_responses(responses: Tensor, titles: Sequence[str], *, title: str | None = None) -> Figure:
    """Kernel-filtered activation images: rows = cases (titled e.g. "0 + 1 = 1"), columns = kernels.

    Args:
        responses: (n_cases, n_kernels, height, width), e.g. `ConvProbe.kernel_responses(images)`.
        titles: One label per case.
        title: Figure title.
    """
    values = _numpy(responses)
    if values.ndim != 4 or values.shape[0] != len(titles):
        raise DataError(
            f"responses must be (n_cases, n_kernels, height, width) with one title per case, got "
            f"{tuple(responses.shape)} and {len(titles)} titles."
        )
    n_cases, k, height, width = values.shape
    limit = float(np.abs(values).max()) or 1.0
    cell_w = min(3.6, max(1.5, 0.11 * width + 1.0))
    cell_h = min(1.8, max(0.8, cell_w * height / max(width, 1)))
    fig, axes = plt.subplots(
        n_cases, k, figsize=(2.6 + cell_w * k, 1.2 + cell_h * n_cases), squeeze=False, layout="constrained"
    )
    image = None
    for r in range(n_cases):
        for c in range(k):
            ax = axes[r][c]
            image = ax.imshow(values[r, c], cmap=DIVERGING, vmin=-limit, vmax=limit, aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"kernel {c + 1}")
            if c == 0:
                ax.set_ylabel(titles[r], rotation=0, ha="right", va="center", fontsize=11)
    fig.supxlabel("image columns: kernel window over consecutive units", fontsize=10)
    fig.supylabel("case   (image rows: kernel window over consecutive layers)", fontsize=10)
    fig.suptitle(title or "Kernel-filtered activation images, one example per case")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=min(1.0, 6.0 / n_cases), label="kernel response")
    return fig


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _short(probe_repr: str) -> str:
    return probe_repr if len(probe_repr) <= 40 else probe_repr.split("(")[0]

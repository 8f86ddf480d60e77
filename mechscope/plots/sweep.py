"""The spread of a sweep's results over seeds: one panel per group (e.g. per modulus), one dot per run.

Example:
    >>> rows = [{"modulus": 2, "test_accuracy": 1.0, "probe_a": 0.9}, {"modulus": 2, "test_accuracy": 1.0,
    ...          "probe_a": 1.0}]
    >>> fig = plot_sweep(rows, {"test_accuracy": "model", "probe_a": "probe a"}, by="modulus")
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from mechscope.errors import DataError
from mechscope.plots._style import CATEGORICAL, Figure, plt

__all__ = ["plot_sweep"]

_MUTED = "0.55"  # colour of the control columns


def plot_sweep(
    rows: Sequence[Mapping[str, float]],
    columns: Mapping[str, str],
    *,
    by: str = "modulus",
    muted: Collection[str] = (),
    title: str = "Sweep: spread over seeds",
    ylabel: str = "held-out accuracy",
) -> Figure:
    """Draw each column's value in every row as a dot, with a bar at its mean, one panel per value of `by`.

    Dots of one column are spread sideways in row order, so equal values stay countable.
    Error bars are sample standard deviations; NaN values are left out.

    Args:
        rows: One mapping per run (a sweep's grid point), column -> value.
        columns: Column -> its label on the x axis, in order.
        by: The column whose values make the panels (in order of first appearance).
        muted: Columns drawn in grey (the controls a claim is measured against).
        title: Figure title.
        ylabel: Label of the y axis.

    Returns:
        The figure: one axes per panel, titled "<by> <value> (<n> runs)".

    Raises:
        DataError: No rows, no columns, or a row lacks `by` or one of the columns.
    """
    _check(rows, columns, by)
    groups = list(dict.fromkeys(row[by] for row in rows))
    names = list(columns)
    colours = plt.get_cmap(CATEGORICAL).colors  # type: ignore[attr-defined]
    fig, axes = plt.subplots(1, len(groups), figsize=(max(3.5, 0.5 * len(names) + 1.0) * len(groups), 4.4),
                             squeeze=False, sharey=True)
    low, high = 0.0, 1.0
    for ax, group in zip(axes[0], groups):
        members = [row for row in rows if row[by] == group]
        for i, name in enumerate(names):
            values = np.array([float(row[name]) for row in members])
            values = values[~np.isnan(values)]
            if not values.size:
                continue
            colour = _MUTED if name in muted else colours[0]
            mean, std = float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0
            ax.bar(i, mean, 0.7, color=colour, alpha=0.3, yerr=std, capsize=3, ecolor=colour)
            ax.scatter(i + np.linspace(-0.25, 0.25, values.size) if values.size > 1 else [i], values, s=14,
                       color=colour, zorder=3, linewidths=0)
            low, high = min(low, float(values.min())), max(high, float(values.max()))
        ax.set_xticks(range(len(names)), [columns[n] for n in names], rotation=40, ha="right")
        ax.set_title(f"{by} {group} ({len(members)} run{'s' if len(members) != 1 else ''})")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylim(low - 0.05 if low < 0 else 0.0, high + 0.08)  # shared by every panel
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.supxlabel("bar: mean +/- std over the runs; dot: one run", fontsize=9)
    fig.tight_layout()
    return fig


def _check(rows: Sequence[Mapping[str, float]], columns: Mapping[str, str], by: str) -> None:
    if not rows or not columns:
        raise DataError(f"plot_sweep needs rows and columns, got {len(rows)} rows and {len(columns)} columns.")
    for row in rows:
        missing = [name for name in (by, *columns) if name not in row]
        if missing:
            raise DataError(f"a row lacks the column(s) {missing}; it has {sorted(row)}.")

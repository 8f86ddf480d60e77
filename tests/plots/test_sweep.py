from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba

from mechscope.errors import DataError
from mechscope.plots.sweep import plot_sweep

COLUMNS = {"test_accuracy": "model", "probe_a": "probe a", "control": "control task"}
ROWS = [
    {"modulus": 2, "seed": 0, "test_accuracy": 1.0, "probe_a": 0.5, "control": 0.25},
    {"modulus": 2, "seed": 1, "test_accuracy": 1.0, "probe_a": 1.0, "control": 0.75},
    {"modulus": 2, "seed": 2, "test_accuracy": 1.0, "probe_a": 0.75, "control": float("nan")},
    {"modulus": 5, "seed": 0, "test_accuracy": 0.9, "probe_a": 0.6, "control": 0.2},
]


def test_plot_sweep_one_panel_per_group_with_labelled_axes():
    fig = plot_sweep(ROWS, COLUMNS, by="modulus", muted=("control",), title="Sweep of two moduli")
    assert [ax.get_title() for ax in fig.axes] == ["modulus 2 (3 runs)", "modulus 5 (1 run)"]
    assert fig._suptitle.get_text() == "Sweep of two moduli"
    assert fig.axes[0].get_ylabel() == "held-out accuracy"
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["model", "probe a", "control task"]
        assert ax.get_ylim() == pytest.approx((0.0, 1.08))


def test_plot_sweep_bars_are_means_and_dots_are_the_runs():
    fig = plot_sweep(ROWS, COLUMNS, by="modulus", muted=("control",))
    panel = fig.axes[0]
    heights = [bar.get_height() for bar in panel.patches]
    assert heights == pytest.approx([1.0, 0.75, 0.5])  # NaN left out of the control's mean
    dots = [c.get_offsets() for c in panel.collections if isinstance(c, PathCollection)]  # the scatters
    np.testing.assert_allclose(dots[1][:, 1], [0.5, 1.0, 0.75])  # in row order
    np.testing.assert_allclose(dots[1][:, 0], [0.75, 1.0, 1.25])  # spread sideways around x = 1
    assert [len(d) for d in dots] == [3, 3, 2]
    assert panel.patches[2].get_facecolor()[:3] == pytest.approx(to_rgba("0.55")[:3])  # a control: grey
    assert panel.patches[0].get_facecolor()[:3] != pytest.approx(to_rgba("0.55")[:3])


def test_plot_sweep_y_axis_widens_for_values_outside_zero_one():
    rows = [{"modulus": 2, "selectivity": -0.4}, {"modulus": 2, "selectivity": 1.2}]
    fig = plot_sweep(rows, {"selectivity": "selectivity"})
    assert fig.axes[0].get_ylim() == pytest.approx((-0.45, 1.28))


@pytest.mark.parametrize(
    ("rows", "columns", "message"),
    [
        ([], COLUMNS, "needs rows and columns, got 0 rows and 3 columns"),
        (ROWS, {}, "needs rows and columns, got 4 rows and 0 columns"),
        ([{"modulus": 2, "test_accuracy": 1.0}], COLUMNS, r"a row lacks the column\(s\) \['probe_a', 'control'\]"),
    ],
)
def test_plot_sweep_missing_data_raises(rows, columns, message):
    with pytest.raises(DataError, match=message):
        plot_sweep(rows, columns)

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.container import BarContainer

from mechscope.errors import DataError
from mechscope.plots.probes import (
    plot_accuracy_by_layer,
    plot_kernel_responses,
    plot_probe_kernels,
    plot_probe_report,
)
from mechscope.probes import LayerProbeTable, LinearProbe, evaluate_probe
from mechscope.probes.by_layer import LayerScore
from mechscope.devices import threads


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread for this module, restored afterwards: the tensors are tiny (see tests/probes/conftest.py)."""
    with threads(1):
        yield


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def test_plot_kernel_responses_grid_rows_cases_columns_kernels():
    responses = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    titles = ["0 + 0 = 0", "0 + 1 = 1", "1 + 0 = 1", "1 + 1 = 0"]
    fig = plot_kernel_responses(responses, titles)
    image_axes = _image_axes(fig)
    assert len(image_axes) == 12
    assert [ax.get_title() for ax in image_axes[:3]] == ["kernel 1", "kernel 2", "kernel 3"]
    assert [image_axes[3 * r].get_ylabel() for r in range(4)] == titles
    limit = responses.abs().max().item()
    for r in range(4):
        for c in range(3):
            image = image_axes[3 * r + c].images[0]
            np.testing.assert_allclose(image.get_array(), responses[r, c].numpy())
            assert image.get_clim() == pytest.approx((-limit, limit))  # one scale, symmetric about 0
    assert fig._suptitle.get_text() == "Kernel-filtered activation images, one example per case"


def test_plot_kernel_responses_title_count_mismatch_raises():
    with pytest.raises(DataError, match="one title per case, got \\(2, 3, 4, 4\\) and 1 titles"):
        plot_kernel_responses(torch.zeros(2, 3, 4, 4), ["only one"])


def test_plot_probe_kernels_one_panel_per_kernel_values_in_the_cells():
    kernels = torch.tensor([[[[0.5, -0.5], [0.1, 0.0]]], [[[1.0, 0.0], [0.0, -2.0]]]])
    fig = plot_probe_kernels(kernels)
    panels = _image_axes(fig)
    assert [ax.get_title() for ax in panels] == ["kernel 1", "kernel 2"]
    for ax, kernel in zip(panels, kernels[:, 0]):
        np.testing.assert_allclose(ax.images[0].get_array(), kernel.numpy())
        assert ax.images[0].get_clim() == (-2.0, 2.0)
    assert [t.get_text() for t in panels[1].texts] == ["1.00", "0.00", "0.00", "-2.00"]
    assert panels[1].texts[3].get_color() == "white"  # strong weights get a light label
    assert (panels[0].get_ylabel(), panels[1].get_ylabel()) == ("row", "")
    assert fig.axes[-1].get_ylabel() == "weight"  # the colour bar


def test_plot_probe_kernels_draws_a_row_per_input_channel():
    kernels = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    panels = _image_axes(plot_probe_kernels(kernels))
    assert len(panels) == 6 and panels[3].get_title() == "kernel 2, channel 1"
    np.testing.assert_array_equal(panels[3].images[0].get_array(), kernels[1, 1].numpy())


def test_plot_probe_kernels_rejects_a_vector():
    with pytest.raises(DataError, match="kernels must have shape"):
        plot_probe_kernels(torch.zeros(4))


def test_plot_probe_report_has_all_series():
    g = torch.Generator().manual_seed(0)
    types = torch.arange(40).repeat(3)
    x = torch.randn(40, 5, generator=g)[types]
    report = evaluate_probe(LinearProbe(), x, {"y": types % 2}, types=types, seeds=(0, 1), untrained=x.flip(1))
    fig = plot_probe_report(report)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["probe", "untrained copy", "control task", "majority baseline"]
    assert "2 seeds" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["y", "all heads"]
    probe, untrained, control, baseline = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [bar.get_height() for bar in probe] == pytest.approx([report.heads["y"], report.all_heads_accuracy])
    assert [bar.get_height() for bar in untrained] == pytest.approx(
        [report.untrained_heads["y"], report.untrained_accuracy])
    assert [bar.get_height() for bar in control] == pytest.approx([report.control_heads["y"], report.control_accuracy])
    assert [bar.get_height() for bar in baseline] == pytest.approx(
        [report.baseline_heads["y"], report.baseline_accuracy])


def test_plot_accuracy_by_layer_draws_one_panel_per_target_with_its_controls():
    def row(layer, label, score, untrained):
        return LayerScore(layer, label, "categorical", score, 0.1, 0.5, 0.4, score - 0.4, untrained)

    table = LayerProbeTable(
        rows=(row("fc1", "a", 0.6, 0.5), row("fc1", "b", 0.7, None), row("fc2", "a", 0.9, 0.55),
              row("fc2", "b", 1.0, None)),
        layers=("fc1", "fc2"), labels=("a", "b"), probe="LinearProbe()", seeds=(0, 1, 2),
    )
    fig = plot_accuracy_by_layer(table)
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == ("label 'a'", "label 'b'")
    assert left.get_ylabel() == "held-out accuracy"
    assert fig._suptitle.get_text() == "Probe accuracy by layer (LinearProbe(), mean +/- std over 3 seeds)"
    probe = left.containers[0].lines[0]
    np.testing.assert_allclose(np.asarray(probe.get_xdata(), dtype=float), [-0.1, 0.9])  # dodged left
    np.testing.assert_allclose(np.asarray(probe.get_ydata(), dtype=float), [0.6, 0.9])
    assert sorted(t.get_text() for t in right.get_legend().get_texts()) == ["control task", "majority baseline",
                                                                           "probe"]
    untrained = [line for line in left.lines if line.get_label() == "untrained copy"][0]
    np.testing.assert_allclose(untrained.get_ydata(), [0.5, 0.55])
    assert not [line for line in right.lines if line.get_label() == "untrained copy"]  # not run for b
    assert [t.get_text() for t in left.get_xticklabels()] == ["fc1", "fc2"]

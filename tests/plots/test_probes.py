from __future__ import annotations

import pytest
import torch

from mechscope.errors import DataError
from mechscope.plots._style import save_figure
from mechscope.plots.probes import plot_kernel_responses, plot_kernels, plot_probe_report
from mechscope.probes import LinearProbe, evaluate_probe


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread for this module, restored afterwards: the tensors are tiny (see tests/probes/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_plot_kernel_responses_grid_rows_cases_columns_kernels(tmp_path):
    responses = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    titles = ["0 + 0 = 0", "0 + 1 = 1", "1 + 0 = 1", "1 + 1 = 0"]
    fig = plot_kernel_responses(responses, titles)
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 12
    assert [ax.get_title() for ax in image_axes[:3]] == ["kernel 1", "kernel 2", "kernel 3"]
    assert [image_axes[3 * r].get_ylabel() for r in range(4)] == titles
    assert save_figure(fig, tmp_path / "responses.png").stat().st_size > 5_000


def test_plot_kernel_responses_title_count_mismatch_raises():
    with pytest.raises(DataError, match="one title per case, got \\(2, 3, 4, 4\\) and 1 titles"):
        plot_kernel_responses(torch.zeros(2, 3, 4, 4), ["only one"])


def test_plot_kernels_one_panel_per_kernel_with_colorbar(tmp_path):
    fig = plot_kernels(torch.tensor([[[[0.5, -0.5], [0.1, 0.0]]], [[[1.0, 0.0], [0.0, -1.0]]]]))
    titles = [ax.get_title() for ax in fig.axes]
    assert "kernel 1" in titles and "kernel 2" in titles
    assert any(ax.get_ylabel() == "weight" for ax in fig.axes)  # the colorbar
    save_figure(fig, tmp_path / "kernels.png")


def test_plot_probe_report_has_all_series(tmp_path):
    g = torch.Generator().manual_seed(0)
    types = torch.arange(40).repeat(3)
    x = torch.randn(40, 5, generator=g)[types]
    report = evaluate_probe(LinearProbe(), x, {"y": types % 2}, types=types, seeds=(0, 1), untrained=x.flip(1))
    fig = plot_probe_report(report)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["probe", "untrained copy", "control task", "majority baseline"]
    assert "2 seeds" in fig.axes[0].get_title()
    save_figure(fig, tmp_path / "report.png")

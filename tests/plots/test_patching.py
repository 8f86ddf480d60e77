"""Patching, logit-lens and attention figures draw their data, labels and colour limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mechscope.lens.direct import LogitAttribution
from mechscope.lens.logit_lens import LogitLens
from mechscope.patching.activation import PatchingResult
from mechscope.patching.attribution import compare
from mechscope.plots._style import plt
from mechscope.plots.patching import (
    plot_attention,
    plot_logit_attribution,
    plot_logit_lens,
    plot_patching,
    plot_patching_comparison,
)


def _result(values: list[list[float]], method: str = "exact") -> PatchingResult:
    v = torch.tensor(values, dtype=torch.float64)
    return PatchingResult(layers=["l0", "l1"], along="pos", n_cells=[3, 2], values=v, metric_values=v * 2,
                          clean_metric=2.0, corrupt_metric=0.0, metric="logit diff 1 - 2", direction="denoise",
                          method=method)


def test_patching_heatmap_shows_the_values_with_symmetric_limits() -> None:
    fig = plot_patching(_result([[0.0, 1.0, -0.5], [0.25, 2.0, float("nan")]]), cell_labels=["a", "b", "="])
    ax = fig.axes[0]
    image = ax.get_images()[0]
    drawn = image.get_array()
    assert drawn.mask[1, 2] and float(drawn[1, 1]) == 2.0  # NaN padding is masked, not drawn as a colour
    assert image.get_clim() == (-2.0, 2.0)  # symmetric around 0, at least [-1, 1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["l0", "l1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "="]
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0.00", "1.00", "-0.50", "0.25", "2.00"])
    assert "logit diff 1 - 2" in ax.get_title() and "denoise" in ax.get_title()
    plt.close(fig)


def test_comparison_draws_exact_estimate_and_error() -> None:
    exact = _result([[0.0, 1.0, 0.0], [0.5, 0.5, float("nan")]])
    approx = _result([[0.0, 0.75, 0.0], [0.5, 1.0, float("nan")]], method="attribution")
    fig = plot_patching_comparison(compare(exact, approx))
    grids = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in grids] == ["exact", "attribution estimate", "estimate - exact"]
    error = grids[2].get_images()[0].get_array()
    assert np.allclose(error[0].filled(np.nan), [0.0, -0.25, 0.0]) and float(error[1, 1]) == pytest.approx(0.5)
    assert "0.500" in fig._suptitle.get_text()
    plt.close(fig)


def test_logit_lens_draws_mean_rank_and_probability() -> None:
    rank = torch.tensor([[[0, 9]], [[0, 0]]])  # (layer, batch, pos)
    prob = torch.tensor([[[0.9, 0.1]], [[0.8, 0.7]]], dtype=torch.float64)
    lens = LogitLens(layers=["a", "b"], answer=torch.zeros(1, 2, dtype=torch.long), logit=prob, probability=prob,
                     rank=rank, top=torch.zeros(2, 1, 2, dtype=torch.long))
    fig = plot_logit_lens(lens)
    left, right = [ax for ax in fig.axes if ax.get_images()]
    assert np.allclose(left.get_images()[0].get_array(), [[0.0, 1.0], [0.0, 0.0]])  # log10(1 + rank)
    assert np.allclose(right.get_images()[0].get_array(), prob[:, 0].numpy())
    plt.close(fig)


def test_logit_attribution_bars_follow_the_labels() -> None:
    dla = LogitAttribution(labels=["embed", "head 0", "mlp"], contributions=torch.tensor([[1.0, -2.0, 3.0]]),
                           logit=torch.tensor([2.0]), remainder=torch.tensor([0.0]))
    fig = plot_logit_attribution(dla)
    ax = fig.axes[0]
    assert [bar.get_width() for bar in ax.patches] == [1.0, -2.0, 3.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["embed", "head 0", "mlp"]
    plt.close(fig)


def test_attention_has_one_panel_per_head_in_zero_one() -> None:
    pattern = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.9, 0.1]]])
    fig = plot_attention(pattern, tokens=["x", "y"], title="layer")
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["head 0", "head 1"]
    assert all(ax.get_images()[0].get_clim() == (0.0, 1.0) for ax in panels)
    assert np.allclose(panels[1].get_images()[0].get_array(), pattern[1].numpy())
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["x", "y"]
    plt.close(fig)

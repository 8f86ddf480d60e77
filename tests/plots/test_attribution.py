from __future__ import annotations

import numpy as np
import pytest
import torch

from mechscope.attribution import FaithfulnessResult, SanityResult
from mechscope.attribution.faithfulness import RANDOM
from mechscope.errors import DataError
from mechscope.plots.attribution import plot_attribution_grid, plot_perturbation_curves, plot_sanity_curves


def _grid_inputs():
    images = torch.zeros(2, 1, 4, 4)
    images[0, 0, 1:3, 1:3] = 1.0
    images[1, 0, :, :2] = 0.5
    positive = torch.zeros(2, 4, 4)
    positive[0, 0, 0], positive[0, 1, 1], positive[1] = 2.0, 1.0, 3.0
    signed = torch.zeros(2, 4, 4)
    signed[0, 0, 0], signed[0, 3, 3], signed[1, 2, 2] = -4.0, 2.0, 0.5
    return images, {"Grad-CAM": positive, "Gradient x Input": signed}


def test_plot_attribution_grid_draws_each_map_over_its_largest_magnitude():
    images, maps = _grid_inputs()
    fig = plot_attribution_grid(images, maps, row_labels=["label 0", "label 1"], title="maps")
    grid = np.array(fig.axes).reshape(3, 3)  # two image rows and a colour-bar row; input + two methods
    assert fig._suptitle.get_text() == "maps"
    assert [ax.get_title() for ax in grid[0]] == ["input", "Grad-CAM", "Gradient x\nInput"]
    assert [ax.get_ylabel() for ax in grid[:2, 0]] == ["label 0", "label 1"]
    for row in range(2):
        np.testing.assert_array_equal(grid[row, 0].images[0].get_array(), images[row, 0].numpy())
        assert grid[row, 0].images[0].get_clim() == (0.0, 1.0)
        np.testing.assert_allclose(grid[row, 1].images[0].get_array(), maps["Grad-CAM"][row].numpy()
                                   / maps["Grad-CAM"][row].max().item())
        np.testing.assert_allclose(grid[row, 2].images[0].get_array(), maps["Gradient x Input"][row].numpy()
                                   / maps["Gradient x Input"][row].abs().max().item())
        assert grid[row, 1].images[0].get_clim() == (0.0, 1.0)  # non-negative: sequential 0..1
        assert grid[row, 2].images[0].get_clim() == (-1.0, 1.0)  # signed: symmetric about 0
        assert len(grid[row, 1].collections) == 1  # the image's outline drawn over the map
    assert grid[0, 2].images[0].get_array()[0, 0] == -1.0 and grid[0, 2].images[0].get_array()[3, 3] == 0.5
    bars = [ax.child_axes[0] for ax in grid[2, 1:]]
    assert [list(bar.get_xticks()) for bar in bars] == [[0.0, 0.5, 1.0], [-1.0, 0.0, 1.0]]


def test_plot_attribution_grid_draws_the_channel_mean_of_colour_images():
    images = torch.zeros(1, 3, 2, 2)
    images[0, 0] = 0.9
    fig = plot_attribution_grid(images, {"m": torch.ones(1, 2, 2)})
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), np.full((2, 2), 0.3))
    assert not fig.axes[1].collections  # a flat image has no outline


def test_plot_attribution_grid_shape_mismatch_raises():
    with pytest.raises(DataError, match="must match the images"):
        plot_attribution_grid(torch.rand(2, 1, 8, 8), {"m": torch.rand(2, 4, 4)})
    with pytest.raises(DataError, match="one row label per image"):
        plot_attribution_grid(torch.rand(2, 1, 8, 8), {"m": torch.rand(2, 8, 8)}, row_labels=["a"])


def test_plot_perturbation_curves_draws_every_method_beside_the_random_baseline():
    fractions = [0.0, 0.5, 1.0]
    deletion = {"Saliency": [0.9, 0.3, 0.1], "CAM": [0.9, 0.5, 0.1], "Grad-CAM": [0.9, 0.5, 0.1],
                RANDOM: [0.9, 0.6, 0.1]}
    insertion = {k: [1.0 - v for v in vs] for k, vs in deletion.items()}
    areas = {"Saliency": 0.4, "CAM": 0.5, "Grad-CAM": 0.5, RANDOM: 0.55}
    fig = plot_perturbation_curves(FaithfulnessResult(fractions, deletion, insertion, areas, areas, 7))
    left, right = fig.axes
    assert fig._suptitle.get_text() == "Faithfulness of attribution maps (mean over 7 images)"
    assert left.get_title().startswith("Deletion") and right.get_title().startswith("Insertion")
    assert left.get_ylabel() == "probability of the target class" and left.get_ylim() == right.get_ylim()
    for ax, curves in ((left, deletion), (right, insertion)):
        assert len(ax.lines) == 4
        for line, label in zip(ax.lines, ["Saliency", "CAM", "Grad-CAM", RANDOM]):
            np.testing.assert_array_equal(line.get_xdata(), fractions)
            np.testing.assert_allclose(line.get_ydata(), curves[label])
        assert [line.get_linestyle() for line in ax.lines] == ["-", "-", ":", "--"]  # a duplicate is dotted
    assert [t.get_text() for t in left.get_legend().get_texts()] == [
        "Saliency (AUC 0.400)", "CAM (AUC 0.500)", "Grad-CAM (AUC 0.500, same as CAM)", "random map (AUC 0.550)",
    ]


def test_plot_sanity_curves_draws_correlation_per_step_from_1_for_the_trained_model():
    result = SanityResult(
        steps=["fc", "conv1"],
        spearman={"Saliency": [0.3, 0.1], "Guided Backprop": [0.8, 0.6]},
        spearman_std={"Saliency": [0.1, 0.1], "Guided Backprop": [0.1, 0.2]},
        passes={"Saliency": True, "Guided Backprop": False},
        threshold=0.5,
        n_images=4,
    )
    fig = plot_sanity_curves(result)
    (ax,) = fig.axes
    saliency, guided = ax.containers
    np.testing.assert_allclose(saliency.lines[0].get_xdata(), [-0.03, 0.97, 1.97])  # dodged apart
    np.testing.assert_allclose(saliency.lines[0].get_ydata(), [1.0, 0.3, 0.1])
    np.testing.assert_allclose(guided.lines[0].get_ydata(), [1.0, 0.8, 0.6])
    assert saliency.lines[0].get_linestyle() == "-" and guided.lines[0].get_linestyle() == "--"  # a failure dashed
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none (trained)", "fc", "conv1"]
    threshold = [line for line in ax.lines if list(line.get_ydata()) == [0.5, 0.5]]
    assert len(threshold) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "pass: mean over steps < 0.5", "Saliency (mean 0.20, pass)", "Guided Backprop (mean 0.70, FAIL)",
    ]
    assert ax.get_ylim()[1] == 1.05 and ax.get_title().startswith("Sanity check: cascading parameter randomisation")

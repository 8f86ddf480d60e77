from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.container import BarContainer
from torch import nn

from mechscope.plots.formula import plot_formula
from mechscope.symbolic import read_formula

# 4 + 3 + 2 + 1 points in the quadrants (+, +), (-, +), (+, -), (-, -): regions of coverage 40/30/20/10 %.
POINTS = torch.tensor([
    [0.1, 0.2], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7],
    [-0.2, 0.4], [-0.6, 0.1], [-0.9, 0.9],
    [0.4, -0.3], [0.8, -0.8],
    [-0.5, -0.5],
])


def _relu_net(head: list[list[float]], bias: list[float]) -> nn.Sequential:
    """x -> ReLU(x) -> head: the region of a point is its quadrant."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, len(head)))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor(head))
        model[2].bias.copy_(torch.tensor(bias))
    return model


def _bars(ax) -> list[list[float]]:
    return [[b.get_height() for b in c] for c in ax.containers if isinstance(c, BarContainer)]


def test_plot_formula_draws_formula_against_network_coverage_and_coefficients():
    model = _relu_net([[1.0, 2.0]], [0.5])
    report = read_formula(model, POINTS, target={"coefficients": [1.0, 2.0], "constant": 0.5})
    fig = plot_formula(report)
    scatter, coverage, coefficients = fig.axes
    network = model(POINTS).detach()[:, 0].numpy()
    for region, points, cloud in zip(range(4), ([0, 1, 2, 3], [4, 5, 6], [7, 8], [9]), scatter.collections):
        drawn = cloud.get_offsets()
        np.testing.assert_allclose(drawn[:, 0], network[points], rtol=1e-6)  # the network's output ...
        np.testing.assert_allclose(drawn[:, 1], network[points], rtol=1e-6)  # ... equals the region's formula
    diagonal = scatter.lines[0]
    np.testing.assert_allclose(diagonal.get_xdata(), [network.min(), network.max()], rtol=1e-6)
    assert [t.get_text() for t in scatter.get_legend().get_texts()] == [
        "region 1 (40.00%)", "region 2 (30.00%)", "region 3 (20.00%)", "region 4 (10.00%)", "formula = network"]
    assert _bars(coverage) == [pytest.approx([40.0, 30.0, 20.0, 10.0])]
    assert [t.get_text() for t in coverage.texts] == ["40.00%", "30.00%", "20.00%", "10.00%"]
    assert coverage.get_title() == "Coverage of the largest regions (affine if one >= 99%)"
    recovered, true = _bars(coefficients)
    assert recovered == pytest.approx([1.0, 2.0, 0.5]) and true == pytest.approx([1.0, 2.0, 0.5])
    assert [t.get_text() for t in coefficients.get_xticklabels()] == ["x1", "x2", "const"]
    assert coefficients.get_title() == "Recovered vs true coefficients"
    assert fig._suptitle.get_text().startswith("Weight reading: 4 region(s), network NOT affine on the data")


def test_plot_formula_greys_out_regions_beyond_max_regions():
    report = read_formula(_relu_net([[1.0, 2.0]], [0.5]), POINTS)
    fig = plot_formula(report, max_regions=2)
    scatter, coverage, coefficients = fig.axes
    other = scatter.collections[0]  # drawn first, under the named regions
    assert len(other.get_offsets()) == 3 and tuple(other.get_facecolor()[0][:3]) == (0.6, 0.6, 0.6)
    assert [t.get_text() for t in scatter.get_legend().get_texts()][0] == "other regions"
    assert _bars(coverage) == [pytest.approx([40.0, 30.0])]
    assert _bars(coefficients) == [pytest.approx([1.0, 2.0, 0.5])]  # no target: recovered only
    assert coefficients.get_title() == "Recovered coefficients"


def test_plot_formula_draws_several_outputs_as_a_symmetric_heat_map():
    report = read_formula(_relu_net([[1.0, -3.0], [0.5, 2.0]], [0.0, 0.0]), POINTS)
    fig = plot_formula(report)
    coefficients = fig.axes[2]
    image = coefficients.images[0]
    np.testing.assert_allclose(image.get_array(), [[1.0, -3.0], [0.5, 2.0]])
    assert image.get_clim() == (-3.0, 3.0)
    assert [t.get_text() for t in coefficients.get_yticklabels()] == ["f1", "f2"]
    assert coefficients.get_title() == "Region 1 coefficients A (rows: outputs)"

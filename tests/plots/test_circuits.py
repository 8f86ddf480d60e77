from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer
from matplotlib.patches import Rectangle

from mechscope.circuits import DepthStatistics, class_circuits
from mechscope.circuits.ablation import CausalCheck
from mechscope.circuits.activations import ActivationMaps, LayerStatistics
from mechscope.circuits.connections import ConvConnections
from mechscope.circuits.examples import LayerExamples, RankedExamples
from mechscope.circuits.filters import Kernels
from mechscope.circuits.layers import ReceptiveField
from mechscope.circuits.polysemantic import Polysemanticity
from mechscope.data import DataBundle, digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded
from mechscope.plots._mosaic import Mosaic
from mechscope.plots._style import CATEGORICAL, plt
from mechscope.plots.circuits import (
    plot_activation_maps,
    plot_causal_check,
    plot_class_circuit,
    plot_class_circuits,
    plot_connections,
    plot_conv_kernels,
    plot_dataset_examples,
    plot_depth_statistics,
    plot_polysemanticity,
)


def _tile(image, grid: Mosaic, row: int, col: int) -> np.ndarray:
    x, y = grid.origin(row, col)
    return np.ma.filled(image.get_array(), np.nan)[y: y + grid.height, x: x + grid.width]


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_plot_activation_maps_draws_every_channel_on_one_scale_per_layer():
    image = torch.arange(16.0).reshape(1, 4, 4) / 15
    conv = torch.stack([torch.full((4, 4), 2.0), torch.eye(4), -torch.eye(4)])  # (channel, height, width)
    dense = torch.tensor([0.5, 3.0])
    fig = plot_activation_maps(ActivationMaps(image, {"relu1": conv, "fc": dense}), max_channels=2)
    top, first, second = _panels(fig)
    np.testing.assert_allclose(top.images[0].get_array(), image[0].numpy())
    assert top.get_title() == "input"
    assert first.get_title() == "relu1: 2 channels of 4x4" and second.get_title() == "fc: 2 channels of 1x1"
    maps = first.images[0]
    grid = Mosaic(1, 16, 4, 4)
    np.testing.assert_allclose(_tile(maps, grid, 0, 0), conv[0].numpy())
    np.testing.assert_allclose(_tile(maps, grid, 0, 1), conv[1].numpy())
    assert np.isnan(_tile(maps, grid, 0, 2)).all()  # max_channels=2: the third is not drawn
    assert maps.get_clim() == (0.0, 2.0)
    assert _texts(first) == ["0", "1"]
    assert second.images[0].get_clim() == (0.0, 3.0)
    assert [_tile(second.images[0], Mosaic(1, 16, 1, 1), 0, c).item() for c in range(2)] == [0.5, 3.0]
    assert fig._suptitle.get_text() == "Activation maps of every channel, layer by layer (shallow to deep)"


def test_plot_depth_statistics_draws_each_statistic_against_depth():
    stats = DepthStatistics((
        LayerStatistics("relu1", 8, 1.0, 2.0, 0.5, 4.0),
        LayerStatistics("relu2", 4, 0.5, 2.5, 0.75, 1.0),
    ), n_inputs=10)
    fig = plot_depth_statistics(stats)
    means, sparsity, active = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["Mean activation", "Sparsity", "Active units per input"]
    np.testing.assert_array_equal(means.lines[0].get_ydata(), [1.0, 0.5])
    np.testing.assert_array_equal(means.lines[1].get_ydata(), [2.0, 2.5])
    assert [t.get_text() for t in means.get_legend().get_texts()] == ["all units", "non-zero units only"]
    np.testing.assert_array_equal(sparsity.lines[0].get_ydata(), [0.5, 0.75])
    assert sparsity.get_ylim() == (0, 1)
    assert [bar.get_height() for bar in active.patches] == [4.0, 1.0]
    assert _texts(active) == ["50% of 8", "25% of 4"]
    assert all([t.get_text() for t in ax.get_xticklabels()] == ["relu1", "relu2"] for ax in fig.axes)
    assert fig._suptitle.get_text().startswith("Statistics by depth over 10 inputs: 'deeper activations are "
                                               "sparser, early ones larger' holds")


def test_plot_conv_kernels_wraps_a_first_layer_in_rows_of_8_on_a_symmetric_scale():
    weight = torch.arange(10 * 2 * 3, dtype=torch.float32).reshape(10, 1, 2, 3) - 20
    fig = plot_conv_kernels(Kernels("conv1", weight, None))
    ax = _panels(fig)[0]
    image = ax.images[0]
    grid = Mosaic(2, 8, 2, 3)
    np.testing.assert_array_equal(_tile(image, grid, 0, 0), weight[0, 0].numpy())
    np.testing.assert_array_equal(_tile(image, grid, 1, 1), weight[9, 0].numpy())
    assert np.isnan(_tile(image, grid, 1, 2)).all()
    assert image.get_clim() == (-39.0, 39.0)  # symmetric about 0: |weight| reaches 39
    assert _texts(ax) == [f"out {o}" for o in range(10)]
    assert fig._suptitle.get_text() == "Kernels of conv1: (10, 1, 2, 3)"
    assert fig.axes[-1].get_ylabel() == "weight"


def test_plot_conv_kernels_draws_output_rows_and_input_columns_up_to_the_limits():
    weight = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    fig = plot_conv_kernels(Kernels("conv2", weight, None), max_out=2, max_in=3)
    ax = _panels(fig)[0]
    grid = Mosaic(2, 3, 2, 2)
    for o in range(2):
        for i in range(3):
            np.testing.assert_allclose(_tile(ax.images[0], grid, o, i), weight[o, i].numpy())
    limit = weight.abs().max().item()  # over the whole layer, not only the part shown
    assert ax.images[0].get_clim() == pytest.approx((-limit, limit))
    assert _texts(ax) == ["0", "1", "2", "0", "1"]  # input numbers on top, output numbers on the left
    assert ax.get_xlabel() == "input channel (numbers on top)" and ax.get_ylabel() == "output channel"
    assert fig._suptitle.get_text() == "Kernels of conv2: (3, 4, 2, 2) (first 2 x 3 shown)"


def test_plot_conv_kernels_draws_a_conv1d_kernel_as_one_row():
    weight = torch.tensor([[[1.0, -2.0, 3.0]]])
    ax = _panels(plot_conv_kernels(Kernels("conv", weight, None)))[0]
    np.testing.assert_array_equal(_tile(ax.images[0], Mosaic(1, 1, 1, 3), 0, 0), [[1.0, -2.0, 3.0]])


def test_plot_connections_draws_strength_and_signed_sum():
    l2 = torch.tensor([[1.0, 0.0, 2.0], [0.5, 3.0, 0.0]])
    signed = torch.tensor([[1.0, 0.0, -2.0], [0.5, -0.25, 0.0]])
    fig = plot_connections(ConvConnections("conv1", "conv2", l2, signed, top=1))
    strength, summed = _panels(fig)
    np.testing.assert_array_equal(strength.images[0].get_array(), l2.numpy())
    np.testing.assert_array_equal(summed.images[0].get_array(), signed.numpy())
    assert summed.images[0].get_clim() == (-2.0, 2.0)
    assert (strength.get_title(), summed.get_title()) == ("Connection strength (L2 norm)", "Signed sum")
    assert strength.get_xlabel() == "source channel (conv1 output)"
    assert strength.get_ylabel() == "target channel (conv2 output)"
    assert fig._suptitle.get_text() == "Channel-to-channel connections conv1 -> conv2, read from the weights"


def test_plot_causal_check_draws_drops_per_class_and_the_cross_class_matrix():
    check = CausalCheck(
        layer="relu3", mode="zero", n_random=5, top_channels=torch.tensor([[0, 1], [2, 3]]),
        base_accuracy=torch.tensor([1.0, 0.8]), top_drop=torch.tensor([0.6, 0.1]),
        random_drop=torch.tensor([0.2, 0.3]), top_logit_drop=torch.tensor([1.0, 1.0]),
        random_logit_drop=torch.tensor([0.5, 0.5]), cross_drop=torch.tensor([[0.6, -0.4], [0.0, 0.1]]),
    )
    fig = plot_causal_check(check, class_names=("cat", "dog"))
    bars, matrix = _panels(fig)
    top, random = [c for c in bars.containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in top] == pytest.approx([0.6, 0.1])
    assert [b.get_height() for b in random] == pytest.approx([0.2, 0.3])
    assert [t.get_text() for t in bars.get_legend().get_texts()] == [
        "top 2 detectors", "2 random channels (mean of 5)"]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["cat", "dog"]
    np.testing.assert_allclose(matrix.images[0].get_array(), check.cross_drop.numpy())
    assert matrix.images[0].get_clim() == pytest.approx((-0.6, 0.6))
    assert [t.get_text() for t in matrix.get_yticklabels()] == ["cat", "dog"]
    assert fig._suptitle.get_text().startswith("Causal check in relu3: 1 of 2 classes lose more")


def test_plot_dataset_examples_draws_each_unit_s_examples_with_label_and_score():
    inputs = torch.arange(4 * 9, dtype=torch.float32).reshape(4, 1, 3, 3) / 35
    ranked = RankedExamples(torch.tensor([[3.0, 2.0], [1.5, 0.5]]), torch.tensor([[3, 1], [0, 2]]), None)
    bottom = RankedExamples(torch.tensor([[0.0, 1.0], [0.1, 0.2]]), torch.tensor([[0, 2], [3, 1]]), None)
    examples = LayerExamples("fc1", "max", ranked, bottom, (2,), None, 4)
    fig = plot_dataset_examples(examples, inputs, labels=torch.tensor([7, 8, 9, 6]))
    (ax,) = fig.axes
    grid = Mosaic(2, 2, 3, 3)
    for unit in range(2):
        for rank in range(2):
            picture = inputs[int(ranked.indices[unit, rank]), 0].numpy()
            np.testing.assert_allclose(_tile(ax.images[0], grid, unit, rank), picture)
    assert _texts(ax) == ["y=6 3.00", "y=8 2.00", "y=7 1.50", "y=9 0.50", "unit 0", "unit 1"]
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert not ax.patches  # a dense layer has no receptive field to box
    assert fig._suptitle.get_text() == ("Top-2 dataset examples of fc1 over 4 inputs (inputs)\n"
                                        "cell titles: label and activation")
    bottom_fig = plot_dataset_examples(examples, inputs, which="bottom", units=[1])
    np.testing.assert_allclose(_tile(bottom_fig.axes[0].images[0], Mosaic(1, 2, 3, 3), 0, 0), inputs[3, 0].numpy())
    assert _texts(bottom_fig.axes[0]) == ["0.10", "0.20", "unit 1"]


def _conv_examples() -> tuple[LayerExamples, torch.Tensor]:
    """One unit of a 3x3-field conv layer over 4x4 inputs; its best example peaks at the corner (0, 0)."""
    inputs = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4) / 31
    ranked = RankedExamples(torch.tensor([[2.0, 1.0]]), torch.tensor([[1, 0]]), torch.tensor([[[0, 0], [2, 1]]]))
    field = ReceptiveField(size=(3, 3), jump=(1, 1), start=(0.0, 0.0))
    return LayerExamples("relu1", "max", ranked, ranked, (1, 4, 4), field, 2), inputs


def test_plot_dataset_examples_boxes_the_receptive_field_clipped_to_the_image():
    examples, inputs = _conv_examples()
    fig = plot_dataset_examples(examples, inputs)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    grid = Mosaic(1, 2, 4, 4)
    (x0, y0), (x1, y1) = grid.origin(0, 0), grid.origin(0, 1)
    # Peak (0, 0): the window starts one pixel outside the image and is clipped to 2 x 2.
    assert (boxes[0].get_xy(), boxes[0].get_width(), boxes[0].get_height()) == ((x0 - 0.5, y0 - 0.5), 2, 2)
    # Peak (2, 1): rows 1..3, columns 0..2.
    assert (boxes[1].get_xy(), boxes[1].get_width(), boxes[1].get_height()) == ((x1 - 0.5, y1 + 0.5), 3, 3)
    assert all(to_rgba(b.get_edgecolor()) == to_rgba("red") for b in boxes)
    assert "red box: receptive field of the maximum" in fig._suptitle.get_text()


def test_plot_dataset_examples_with_crops_draws_the_windows_instead_of_boxes():
    examples, inputs = _conv_examples()
    fig = plot_dataset_examples(examples, inputs, crops=True)
    ax = fig.axes[0]
    crops = examples.crops(inputs)[0, :, 0]  # (k, 3, 3), zero outside the image
    grid = Mosaic(1, 2, 3, 3)
    np.testing.assert_allclose(_tile(ax.images[0], grid, 0, 0), crops[0].numpy())
    np.testing.assert_allclose(_tile(ax.images[0], grid, 0, 0)[1:, 1:], inputs[1, 0, :2, :2].numpy())
    assert not [p for p in ax.patches if isinstance(p, Rectangle)]
    assert "(receptive-field crops)" in fig._suptitle.get_text()


def test_plot_polysemanticity_stacks_label_shares_most_polysemantic_first():
    counts = torch.tensor([[4, 0, 0], [2, 1, 1], [0, 0, 0], [2, 2, 0]])
    poly = Polysemanticity(
        layer="relu2", k=4, coverage=0.8, min_classes=2, label_counts=counts,
        entropy=torch.tensor([0.0, 1.5, 0.0, 1.0]), n_covering=torch.tensor([1, 3, 0, 2]),
        is_dead=torch.tensor([False, False, True, False]), class_names=("a", "b", "c"),
    )
    fig = plot_polysemanticity(poly)
    (ax,) = fig.axes
    order = [1, 3, 0, 2]  # by entropy, the dead unit last
    shares = counts[order].double() / counts[order].sum(dim=1, keepdim=True).clamp_min(1)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    for c, colour in enumerate(plt.get_cmap(CATEGORICAL).colors[:3]):
        assert [b.get_width() for b in bars[c]] == pytest.approx(shares[:, c].tolist())
        assert bars[c][0].get_facecolor() == to_rgba(colour)
    assert [b.get_width() for b in bars[3]] == [1.0] and bars[3][0].get_y() == pytest.approx(3 - 0.4)  # dead: grey
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "* unit 1  H=1.50", "* unit 3  H=1.00", "unit 0  H=0.00", "unit 2 (dead)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert ax.get_title() == "Polysemanticity of relu2: 2 of 4 units need >= 2 classes to cover 80% (*)"


@pytest.fixture(scope="module")
def circuits():
    digits = digits_data("digits")
    data = DataBundle(digits.x_train[:200], digits.y_train[:200], digits.x_test[:100], digits.y_test[:100],
                      digits.spec, "classification", 10, digits.class_names)
    config = DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True)
    model = build_seeded(DigitCNN, config, seed=0).eval()
    return class_circuits(model, data, n_random=1)


def test_plot_class_circuits_draws_each_class_mean_input_beside_its_top_channels(circuits):
    found = circuits.contributions
    fig = plot_class_circuits(found, circuits.class_mean_inputs)
    left, right = _panels(fig)
    n, top = found.top_channels.shape
    side = circuits.class_mean_inputs.shape[-2:]
    inputs, maps = Mosaic(n, 1, *side), Mosaic(n, top, *side)
    cls, rank = 4, 1
    np.testing.assert_allclose(_tile(left.images[0], inputs, cls, 0), circuits.class_mean_inputs[cls, 0].numpy(),
                               rtol=1e-6)
    channel = int(found.top_channels[cls, rank])
    upsampled = torch.nn.functional.interpolate(found.mean_maps[None, cls, [channel]], size=tuple(side))[0, 0]
    np.testing.assert_allclose(_tile(right.images[0], maps, cls, rank), upsampled.numpy(), rtol=1e-6)
    low, high = right.images[0].get_clim()
    assert low == 0.0 and high == pytest.approx(max(float(found.top_maps(c).max()) for c in range(n)))
    assert f"ch {channel}: {float(found.contributions[cls, channel]):+.2f}" in _texts(right)
    assert [f"class {name}" for name in found.class_names] == _texts(left)
    assert (left.get_title(), right.get_title()) == ("mean input", f"top {top} channels: mean activation on the class")


def test_plot_class_circuit_draws_sources_detectors_and_the_class_logit(circuits):
    found, cls = circuits.contributions, 4
    fig = plot_class_circuit(circuits, cls)
    canvas = fig.axes[0]
    detectors = found.top_channels[cls].tolist()
    contributions = [float(found.contributions[cls, d]) for d in detectors]
    pair = circuits.feeding()
    sources = list(dict.fromkeys(s for d in detectors for s in pair.top_inbound[d, :2].tolist()))
    assert len(canvas.images) == len(sources) + len(detectors) + 1  # one thumbnail per node and the logit's input
    titles = _texts(canvas)
    assert all(f"{found.layer} ch {d}" in titles for d in detectors)
    assert all(f"{circuits.source_layer} ch {s}" in titles for s in sources)
    assert [f"{v:+.2f}" for v in contributions] == [t for t in titles if t[0] in "+-" and t[1:2].isdigit()]
    detector_maps = [im for im in canvas.images if any(np.array_equal(im.get_array(), found.mean_maps[cls, d].numpy())
                                                       for d in detectors)]
    assert len(detector_maps) == len(detectors)
    edges = canvas.lines
    assert len(edges) == len(detectors) + sum(len(set(pair.top_inbound[d, :2].tolist())) for d in detectors)
    widest = max(abs(v) for v in contributions)
    for edge, value in zip(edges, contributions):  # detector -> logit edges are drawn first
        assert edge.get_linewidth() == pytest.approx(0.5 + 5.0 * abs(value) / widest)
        assert to_rgba(edge.get_color())[:3] == to_rgba("tab:red" if value >= 0 else "tab:blue")[:3]
    assert fig._suptitle.get_text().startswith(f"Circuit of class {found.class_names[cls]}:")

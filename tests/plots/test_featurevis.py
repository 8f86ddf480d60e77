from __future__ import annotations

import numpy as np
import pytest
import torch

from mechscope.errors import DataError
from mechscope.featurevis.evidence import Evidence
from mechscope.plots.featurevis import MAX_PANELS, plot_class_pairs, plot_layer_grid


def _evidence(n: int) -> Evidence:
    ratio = tuple([1.5] * (n - 1) + [float("nan")])
    return Evidence("relu2 channels", tuple(range(n)), (1.0,) * n, (0.5,) * (n - 1) + (0.0,), (0,) * n, ratio)


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_plot_layer_grid_draws_each_unit_above_its_best_example():
    images, examples = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    fig = plot_layer_grid(images, title="relu2: channel objective", evidence=_evidence(3), examples=examples,
                          value_range=(-1.0, 2.0))
    panels = _panels(fig)
    assert len(panels) == 6 and len(fig.axes) == 7  # 2 rows of 3 and one colour bar
    assert [ax.get_title() for ax in panels[:3]] == ["ch 0\n\u00d71.50", "ch 1\n\u00d71.50", "ch 2\nnever active"]
    assert [ax.get_title() for ax in panels[3:]] == ["best example"] * 3
    for i in range(3):
        np.testing.assert_allclose(panels[i].images[0].get_array(), images[i, 0].numpy())
        np.testing.assert_allclose(panels[3 + i].images[0].get_array(), examples[i, 0].numpy())
        assert panels[i].images[0].get_clim() == (-1.0, 2.0)
    assert fig._suptitle.get_text() == "relu2: channel objective\n2/2 units reach their best dataset activation"
    assert fig.axes[-1].get_ylabel() == "pixel value"


def test_plot_layer_grid_wraps_units_in_rows_of_8_and_leaves_the_rest_blank():
    fig = plot_layer_grid(torch.rand(11, 1, 4, 4), title="relu1", unit_label="unit")
    panels = _panels(fig)
    assert len(panels) == 16
    assert [ax.get_title() for ax in panels[:11]] == [f"unit {u}" for u in range(11)]
    assert all(not ax.images and ax.get_title() == "" for ax in panels[11:])
    assert fig._suptitle.get_text() == "relu1"


def test_plot_layer_grid_draws_three_channels_as_rgb_scaled_from_the_value_range():
    images = torch.zeros(1, 3, 2, 2)
    images[0, 0, 0, 0] = 1.0  # the top value of (-1, 1): full red
    fig = plot_layer_grid(images, title="rgb", value_range=(-1.0, 1.0))
    drawn = _panels(fig)[0].images[0].get_array()
    assert drawn.shape == (2, 2, 3)
    np.testing.assert_allclose(drawn[0, 0], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(drawn[1, 1], [0.5, 0.5, 0.5])


def test_plot_layer_grid_draws_many_units_as_one_mosaic():
    n = MAX_PANELS + 36  # 100 units: 10 x 10 tiles
    images = torch.rand(n, 1, 5, 4)
    fig = plot_layer_grid(images, title="relu9", evidence=_evidence(n))
    drawn = [image for ax in fig.axes for image in ax.get_images()]
    assert len(drawn) == 1 and len(fig.axes) == 2  # the mosaic and its colour bar
    tiles = np.ma.filled(drawn[0].get_array(), np.nan)
    assert tiles.shape == (10 * 6 - 1, 10 * 5 - 1)
    np.testing.assert_allclose(tiles[6 * 2: 6 * 2 + 5, 5 * 3: 5 * 3 + 4], images[23, 0].numpy(), rtol=1e-6)
    assert np.isnan(tiles[5, :]).all()  # a blank line between rows
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[:2] == ["ch 0", "ch 10"] and "99/99 units reach" in fig._suptitle.get_text()
    assert fig.axes[0].get_title() == "rendered: 100 units, 10 per row, read left to right"


def test_plot_layer_grid_mosaic_puts_the_best_examples_beside_the_rendered_images():
    n = MAX_PANELS + 1
    examples = torch.rand(n, 1, 3, 3)
    fig = plot_layer_grid(torch.rand(n, 1, 3, 3), title="relu9", examples=examples)
    rendered, best = _panels(fig)
    assert best.get_title().startswith("best dataset example: 65 units")
    tiles = np.ma.filled(best.images[0].get_array(), np.nan)
    np.testing.assert_allclose(tiles[:3, 4:7], examples[1, 0].numpy(), rtol=1e-6)


def test_plot_class_pairs_draws_logit_pictures_above_probability_pictures():
    logits, probs = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    fig = plot_class_pairs(logits, probs, class_names=["cat", "dog"], logit_evidence=_evidence(2),
                           prob_evidence=_evidence(2))
    panels = _panels(fig)
    assert len(panels) == 4
    top, bottom = panels[:2], panels[2:]
    assert [ax.get_title() for ax in top] == ["class cat\n\u00d71.50", "class dog"]  # no ratio: never active
    assert [ax.get_title() for ax in bottom] == ["p = 1.0000", "p = 1.0000"]
    assert (top[0].get_ylabel(), bottom[0].get_ylabel()) == ("logit\n(pre-softmax)", "probability\n(post-softmax)")
    for k in range(2):
        np.testing.assert_allclose(top[k].images[0].get_array(), logits[k, 0].numpy())
        np.testing.assert_allclose(bottom[k].images[0].get_array(), probs[k, 0].numpy())
    assert fig._supxlabel is not None and "largest logit of the class" in fig._supxlabel.get_text()


def test_plot_class_pairs_names_classes_by_index_by_default():
    fig = plot_class_pairs(torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2))
    assert [ax.get_title() for ax in _panels(fig)[:3]] == ["class 0", "class 1", "class 2"]


def test_featurevis_plots_reject_bad_images():
    with pytest.raises(DataError, match="non-empty"):
        plot_layer_grid(torch.rand(8, 8), title="x")
    with pytest.raises(DataError, match="must match"):
        plot_class_pairs(torch.rand(10, 1, 8, 8), torch.rand(9, 1, 8, 8))

from __future__ import annotations

import matplotlib.image
import pytest
import torch

from mechscope.errors import DataError
from mechscope.featurevis import Evidence
from mechscope.plots.featurevis import plot_class_pairs, plot_layer_grid, save_unit_image


def _evidence(n: int) -> Evidence:
    ratio = tuple([1.5] * (n - 1) + [float("nan")])
    return Evidence("relu2 channels", tuple(range(n)), (1.0,) * n, (0.5,) * (n - 1) + (0.0,), (0,) * n, ratio)


@pytest.mark.parametrize(("n", "channels"), [(3, 1), (16, 1), (4, 3)])
def test_plot_layer_grid_writes_a_png(tmp_path, n, channels):
    images = torch.rand(n, channels, 8, 8)
    path = plot_layer_grid(images, tmp_path / "grid.png", title="relu2: channel objective", evidence=_evidence(n),
                           examples=torch.rand(n, channels, 8, 8))
    picture = matplotlib.image.imread(path)
    assert picture.shape[0] > 100 and picture.shape[1] > 200


def test_plot_class_pairs_writes_a_png(tmp_path):
    path = plot_class_pairs(torch.rand(10, 1, 8, 8), torch.rand(10, 1, 8, 8), tmp_path / "classes.png",
                            logit_evidence=_evidence(10), prob_evidence=_evidence(10))
    assert matplotlib.image.imread(path).shape[1] > 500


def test_save_unit_image_keeps_the_pixels(tmp_path):
    image = torch.zeros(1, 4, 4)
    image[0, 1, 2] = 1.0
    picture = matplotlib.image.imread(save_unit_image(image, tmp_path / "u" / "unit.png"))
    assert picture.shape[:2] == (4, 4)
    assert picture[1, 2, 0] == 1.0 and picture[0, 0, 0] == 0.0


def test_plots_reject_bad_images(tmp_path):
    with pytest.raises(DataError, match="non-empty"):
        plot_layer_grid(torch.rand(8, 8), tmp_path / "x.png", title="x")
    with pytest.raises(DataError, match="must match"):
        plot_class_pairs(torch.rand(10, 1, 8, 8), torch.rand(9, 1, 8, 8), tmp_path / "y.png")

from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pytest
import torch
from PIL import Image

import mechscope.plots.featurevis as featurevis_plots
from mechscope.atomic import owned_png
from mechscope.errors import DataError, OutputError
from mechscope.featurevis import Evidence
from mechscope.plots._style import plt
from mechscope.plots.featurevis import (
    MAX_PANELS,
    plot_class_pairs,
    plot_layer_grid,
    save_unit_image,
    save_unit_images,
    unit_png,
)


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
    path = save_unit_image(image, tmp_path / "u" / "unit.png")
    picture = matplotlib.image.imread(path)
    assert picture.shape == (4, 4)  # 8-bit grey, one pixel per value
    assert picture[1, 2] == 1.0 and picture[0, 0] == 0.0
    assert owned_png(path)


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-0.5, 2.0)])
def test_unit_png_has_the_pixels_matplotlib_imsave_gives(value_range):
    image = torch.rand(1, 9, 7, generator=torch.Generator().manual_seed(0)) * 3 - 1  # beyond the range too
    ours = np.asarray(Image.open(io.BytesIO(unit_png(image, value_range=value_range))))
    buffer = io.BytesIO()
    plt.imsave(buffer, image[0].numpy(), cmap="gray", vmin=value_range[0], vmax=value_range[1], format="png")
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    assert ours.shape == (9, 7) and np.array_equal(ours, reference[..., 0])


def test_unit_png_draws_three_channels_as_rgb():
    image = torch.zeros(3, 2, 2)
    image[0, 0, 0] = image[1, 0, 1] = image[2, 1, 0] = 1.0
    picture = np.asarray(Image.open(io.BytesIO(unit_png(image))))
    assert picture.shape == (2, 2, 3)
    assert picture[0, 0].tolist() == [255, 0, 0] and picture[0, 1].tolist() == [0, 255, 0]
    assert picture[1, 0].tolist() == [0, 0, 255] and picture[1, 1].tolist() == [0, 0, 0]


def test_save_unit_images_writes_one_marked_png_per_unit(tmp_path):
    images = torch.rand(5, 1, 6, 6)
    names = [f"unit_{u:03d}.png" for u in (0, 3, 4, 8, 9)]
    paths = save_unit_images(images, tmp_path / "units", names)
    assert paths == [tmp_path / "units" / n for n in names]
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == names
    assert all(owned_png(p) for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units"]  # no temporary folder left
    for image, path in zip(images, paths):
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(io.BytesIO(unit_png(image)))))


def test_save_unit_images_replaces_its_own_folder_whole(tmp_path):
    save_unit_images(torch.rand(3, 1, 4, 4), tmp_path / "units", ["a.png", "b.png", "c.png"])
    save_unit_images(torch.rand(1, 1, 4, 4), tmp_path / "units", ["d.png"])
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["d.png"]  # no picture of the earlier run


def test_save_unit_images_never_replaces_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="does not hold a folder of unit pictures"):
        save_unit_images(torch.rand(2, 1, 4, 4), tmp_path / "units", ["a.png", "b.png"])
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("names", [["a.png"], ["a.png", "a.png"], ["a.png", "b.jpg"], ["a.png", "../b.png"]])
def test_save_unit_images_rejects_names_that_do_not_match(tmp_path, names):
    with pytest.raises(DataError, match="distinct file names ending in .png"):
        save_unit_images(torch.rand(2, 1, 4, 4), tmp_path / "units", names)
    assert not (tmp_path / "units").exists()


def test_save_unit_images_shows_progress_over_every_picture(tmp_path, monkeypatch):
    calls = []

    def fake_tqdm(items, **kwargs):
        calls.append(kwargs)
        return items

    monkeypatch.setattr(featurevis_plots, "tqdm", fake_tqdm)
    save_unit_images(torch.rand(4, 1, 3, 3), tmp_path / "u", [f"{i}.png" for i in range(4)], progress=True)
    save_unit_images(torch.rand(4, 1, 3, 3), tmp_path / "v", [f"{i}.png" for i in range(4)])
    assert calls[0]["disable"] is None and calls[1]["disable"] is True  # None: only on a terminal


def test_plot_layer_grid_draws_many_units_as_one_mosaic(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(featurevis_plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    n = MAX_PANELS + 36  # 100 units: 10 x 10 tiles
    images = torch.rand(n, 1, 5, 4)
    plot_layer_grid(images, tmp_path / "grid.png", title="relu9", evidence=_evidence(n))
    fig = figures[0]
    drawn = [image for ax in fig.axes for image in ax.get_images()]
    assert len(drawn) == 1 and len(fig.axes) == 2  # the mosaic and its colour bar
    tiles = np.ma.filled(drawn[0].get_array(), np.nan)
    assert tiles.shape == (10 * 6 - 1, 10 * 5 - 1)
    np.testing.assert_allclose(tiles[6 * 2: 6 * 2 + 5, 5 * 3: 5 * 3 + 4], images[23, 0].numpy(), rtol=1e-6)
    assert np.isnan(tiles[5, :]).all()  # a blank line between rows
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[:2] == ["ch 0", "ch 10"] and "99/99 units reach" in fig._suptitle.get_text()
    plt.close(fig)


def test_plots_reject_bad_images(tmp_path):
    with pytest.raises(DataError, match="non-empty"):
        plot_layer_grid(torch.rand(8, 8), tmp_path / "x.png", title="x")
    with pytest.raises(DataError, match="must match"):
        plot_class_pairs(torch.rand(10, 1, 8, 8), torch.rand(9, 1, 8, 8), tmp_path / "y.png")

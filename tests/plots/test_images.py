from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pytest
import torch
from PIL import Image

import mechscope.plots.images as images_module
from mechscope.atomic import owned_png
from mechscope.errors import DataError, OutputError
from mechscope.plots._style import plt
from mechscope.plots.images import image_pixels, image_png_bytes, write_image_png, write_image_pngs


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _imsave(array: np.ndarray, **kwargs) -> np.ndarray:
    buffer = io.BytesIO()
    plt.imsave(buffer, array, format="png", **kwargs)
    return _pixels(buffer.getvalue())


def test_write_image_png_keeps_the_pixels(tmp_path):
    image = torch.zeros(1, 4, 4)
    image[0, 1, 2] = 1.0
    path = write_image_png(image, tmp_path / "u" / "unit.png")
    picture = matplotlib.image.imread(path)
    assert picture.shape == (4, 4)  # 8-bit grey, one pixel per value
    assert picture[1, 2] == 1.0 and picture[0, 0] == 0.0
    assert owned_png(path)


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-0.5, 2.0)])
def test_image_png_bytes_has_the_pixels_matplotlib_imsave_gives(value_range):
    image = torch.rand(1, 9, 7, generator=torch.Generator().manual_seed(0)) * 3 - 1  # beyond the range too
    ours = _pixels(image_png_bytes(image, value_range=value_range))
    reference = _imsave(image[0].numpy(), cmap="gray", vmin=value_range[0], vmax=value_range[1])
    assert ours.shape == (9, 7) and np.array_equal(ours, reference[..., 0])


def test_image_png_bytes_draws_a_colour_map_as_rgb_like_imsave():
    image = torch.rand(5, 6, generator=torch.Generator().manual_seed(1))  # a (height, width) map
    ours = _pixels(image_png_bytes(image, value_range=(0.0, 1.0), cmap="viridis"))
    assert ours.shape == (5, 6, 3)
    assert np.array_equal(ours, _imsave(image.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)[..., :3])


def test_image_png_bytes_draws_three_channels_as_rgb():
    image = torch.zeros(3, 2, 2)
    image[0, 0, 0] = image[1, 0, 1] = image[2, 1, 0] = 1.0
    picture = _pixels(image_png_bytes(image))
    assert picture.shape == (2, 2, 3)
    assert picture[0, 0].tolist() == [255, 0, 0] and picture[0, 1].tolist() == [0, 255, 0]
    assert picture[1, 0].tolist() == [0, 0, 255] and picture[1, 1].tolist() == [0, 0, 0]


def test_image_pixels_averages_channels_and_lifts_rows_to_one_line():
    two = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])
    array, cmap = image_pixels(two, cmap="magma")
    np.testing.assert_array_equal(array, np.full((2, 2), 0.5))
    assert cmap == "magma"
    row, _ = image_pixels(torch.tensor([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(row, [[0.0, 1.0, 2.0]])


def test_write_image_pngs_writes_one_marked_png_per_unit(tmp_path):
    images = torch.rand(5, 1, 6, 6)
    names = [f"unit_{u:03d}.png" for u in (0, 3, 4, 8, 9)]
    paths = write_image_pngs(images, tmp_path / "units", names)
    assert paths == [tmp_path / "units" / n for n in names]
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == names
    assert all(owned_png(p) for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units"]  # no temporary folder left
    for image, path in zip(images, paths):
        assert np.array_equal(np.asarray(Image.open(path)), _pixels(image_png_bytes(image)))


def test_write_image_pngs_replaces_its_own_folder_whole(tmp_path):
    write_image_pngs(torch.rand(3, 1, 4, 4), tmp_path / "units", ["a.png", "b.png", "c.png"])
    write_image_pngs(torch.rand(1, 1, 4, 4), tmp_path / "units", ["d.png"])
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["d.png"]  # no picture of the earlier run


def test_write_image_pngs_never_replaces_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="does not hold a folder of unit pictures"):
        write_image_pngs(torch.rand(2, 1, 4, 4), tmp_path / "units", ["a.png", "b.png"])
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("names", [["a.png"], ["a.png", "a.png"], ["a.png", "b.jpg"], ["a.png", "../b.png"]])
def test_write_image_pngs_rejects_names_that_do_not_match(tmp_path, names):
    with pytest.raises(DataError, match="distinct file names ending in .png"):
        write_image_pngs(torch.rand(2, 1, 4, 4), tmp_path / "units", names)
    assert not (tmp_path / "units").exists()


def test_write_image_pngs_rejects_images_that_are_not_a_batch(tmp_path):
    with pytest.raises(DataError, match=r"non-empty \(batch, channel, height, width\) tensor, got \(4, 4\)"):
        write_image_pngs(torch.rand(4, 4), tmp_path / "units", ["a.png"] * 4)


def test_write_image_pngs_shows_progress_over_every_picture(tmp_path, monkeypatch):
    calls = []

    def fake_tqdm(items, **kwargs):
        calls.append(kwargs)
        return items

    monkeypatch.setattr(images_module, "tqdm", fake_tqdm)
    write_image_pngs(torch.rand(4, 1, 3, 3), tmp_path / "u", [f"{i}.png" for i in range(4)], progress=True)
    write_image_pngs(torch.rand(4, 1, 3, 3), tmp_path / "v", [f"{i}.png" for i in range(4)])
    assert calls[0]["disable"] is None and calls[1]["disable"] is True  # None: only on a terminal

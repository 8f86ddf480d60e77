"""image_data: class folders of small PNGs, pixel values after normalisation, splits, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mechscope.data import DataBundle, image_data, load_data
from mechscope.data import images as images_module
from mechscope.errors import ConfigError, DataError, LimitError
from mechscope.limits import MEMORY_ENV


def _write(path: Path, pixels: np.ndarray, mode: str | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(path)
    return pixels


def _grey_folder(root: Path) -> dict[str, np.ndarray]:
    """Two classes of two 2x3 grey images with known pixels; returns relative path -> pixels."""
    written = {}
    for k, name in enumerate(["a/0.png", "a/1.png", "b/0.png", "b/1.png"]):
        written[name] = _write(root / name, (np.arange(6, dtype=np.uint8).reshape(2, 3) * 20 + 40 * k).astype(np.uint8))
    return written


def _round_trip(bundle: DataBundle) -> DataBundle:
    return load_data(json.loads(json.dumps(bundle.spec)))


def _pixels(written: dict[str, np.ndarray], files: list[str]) -> np.ndarray:
    return np.stack([written[f] for f in files]).astype(np.float64) / 255  # (batch, height, width[, channel])


def test_image_data_grey_auto_normalisation_matches_numpy(tmp_path: Path) -> None:
    written = _grey_folder(tmp_path / "shapes")
    data = image_data(tmp_path / "shapes", test_fraction=0.5, seed=3)
    assert data.class_names == ("a", "b") and data.n_classes == 2
    assert data.x_train.shape == (2, 1, 2, 3) and data.x_test.shape == (2, 1, 2, 3)
    assert sorted(f[0] for f in data.extras["files_train"]) == ["a", "b"]  # one image of each class trains
    train = _pixels(written, data.extras["files_train"])
    mean, std = train.mean(), train.std()
    assert data.spec["normalize"]["mean"] == pytest.approx([mean], abs=1e-15)
    assert data.spec["normalize"]["std"] == pytest.approx([std], abs=1e-15)
    for split in ("train", "test"):
        values = _pixels(written, data.extras[f"files_{split}"])
        expected = (values - mean) / std
        np.testing.assert_allclose(getattr(data, f"x_{split}")[:, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
        labels = [f[0] == "b" for f in data.extras[f"files_{split}"]]
        assert getattr(data, f"y_{split}").tolist() == [int(b) for b in labels]
    assert data.spec == {
        "kind": "images", "directory": str(tmp_path / "shapes"), "image_size": [2, 3], "channels": "grey",
        "normalize": data.spec["normalize"], "test_fraction": 0.5, "seed": 3,
    }
    assert _round_trip(data) == data


def test_image_data_rgb_values_without_normalisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    written = {f"{c}/{i}.png": _write(tmp_path / c / f"{i}.png", rng.integers(0, 256, (3, 2, 3), dtype=np.uint8))
               for c in ("cat", "dog") for i in range(3)}
    data = image_data(tmp_path, normalize="none")
    assert data.spec["channels"] == "rgb" and data.spec["normalize"] == "none"
    expected = _pixels(written, data.extras["files_test"]).transpose(0, 3, 1, 2)  # (batch, channel, height, width)
    np.testing.assert_allclose(data.x_test.numpy(), expected, rtol=1e-6)
    assert _round_trip(data) == data


def test_image_data_rgb_auto_normalises_per_channel(tmp_path: Path) -> None:
    written = {}
    for k, name in enumerate(["x/0.png", "x/1.png", "y/0.png", "y/1.png"]):
        pixels = np.zeros((2, 2, 3), np.uint8)
        pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10 * k, 255 - 30 * k, 77  # blue is constant
        written[name] = _write(tmp_path / name, pixels)
    data = image_data(tmp_path, test_fraction=0.5)
    train = _pixels(written, data.extras["files_train"])
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    assert data.spec["normalize"]["mean"] == pytest.approx(mean.tolist(), abs=1e-15)
    assert data.spec["normalize"]["std"] == pytest.approx([std[0], std[1], 1.0], abs=1e-15)  # zero spread: std 1
    expected = ((train - mean) / [std[0], std[1], 1.0]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(data.x_train.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_image_data_explicit_normalisation_and_resize(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "0.png", np.full((4, 4), 200, np.uint8))
    _write(tmp_path / "a" / "1.png", np.full((6, 2), 100, np.uint8))
    _write(tmp_path / "b" / "0.png", np.full((4, 4), 50, np.uint8))
    data = image_data(tmp_path, image_size=2, normalize={"mean": [0.5], "std": [0.25]}, test_fraction=0.5)
    assert data.spec["image_size"] == [2, 2] and data.spec["normalize"] == {"mean": [0.5], "std": [0.25]}
    values = {f: float(v) for f, v in zip(data.extras["files_train"] + data.extras["files_test"],
                                           torch.cat([data.x_train, data.x_test])[:, 0, 0, 0])}
    expected = {"a/0.png": 200, "a/1.png": 100, "b/0.png": 50}
    assert values == pytest.approx({f: (v / 255 - 0.5) / 0.25 for f, v in expected.items()}, rel=1e-6)
    assert data.x_train.shape[1:] == (1, 2, 2)
    assert _round_trip(data) == data


@pytest.mark.parametrize(("mode", "channels"), [("L", "grey"), ("LA", "grey"), ("1", "grey"), ("RGB", "rgb"),
                                                ("RGBA", "rgb"), ("P", "rgb")])
def test_image_data_channels_follow_the_first_image(tmp_path: Path, mode: str, channels: str) -> None:
    for name in ("a/0.png", "b/0.png", "b/1.png"):
        _write(tmp_path / name, np.full((2, 2, 3), 255, np.uint8), mode)
    data = image_data(tmp_path, normalize="none")
    assert data.spec["channels"] == channels
    assert data.x_train.shape[1] == (1 if channels == "grey" else 3)
    assert torch.all(data.x_train == 1.0)


def test_image_data_grey_option_converts_colour_images(tmp_path: Path) -> None:
    for name in ("a/0.png", "b/0.png", "b/1.png"):
        _write(tmp_path / name, np.full((2, 2, 3), (255, 0, 0), np.uint8))
    data = image_data(tmp_path, channels="gray", normalize="none")
    assert data.spec["channels"] == "grey"
    assert torch.all(data.x_train == 76 / 255)  # Pillow's L = R * 299/1000 + G * 587/1000 + B * 114/1000


def test_image_data_stratified_split_is_deterministic(tmp_path: Path) -> None:
    for c in ("a", "b", "c"):
        for i in range(5):
            _write(tmp_path / c / f"{i}.png", np.full((2, 2), i, np.uint8))
    data = image_data(tmp_path, test_fraction=0.4, seed=5)
    assert torch.bincount(data.y_test).tolist() == [2, 2, 2] and torch.bincount(data.y_train).tolist() == [3, 3, 3]
    assert image_data(tmp_path, test_fraction=0.4, seed=5) == data
    seeds = {tuple(image_data(tmp_path, test_fraction=0.4, seed=s).extras["files_test"]) for s in range(4)}
    assert len(seeds) > 1


def test_image_data_train_and_test_folders_fix_the_split(tmp_path: Path) -> None:
    for name in ("train/a/0.png", "train/a/1.png", "train/b/0.png", "test/b/9.png"):
        _write(tmp_path / name, np.full((2, 2), 9, np.uint8))
    data = image_data(tmp_path, normalize="none")
    assert data.extras["files_train"] == ["train/a/0.png", "train/a/1.png", "train/b/0.png"]
    assert data.extras["files_test"] == ["test/b/9.png"] and data.y_test.tolist() == [1]
    assert data.spec["test_fraction"] is None
    assert _round_trip(data) == data
    with pytest.raises(ConfigError, match=r"^test_fraction=0\.5 cannot apply to '.*': its train/ and test/ folders"):
        image_data(tmp_path, test_fraction=0.5)


def test_image_data_ignores_hidden_and_other_files(tmp_path: Path) -> None:
    _grey_folder(tmp_path)
    (tmp_path / "a" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "a" / "notes.txt").write_text("junk")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "b" / ".thumbs").mkdir()
    (tmp_path / "b" / ".thumbs" / "0.png").write_bytes(b"junk")
    _write(tmp_path / "b" / "nested" / "2.PNG", np.zeros((2, 3), np.uint8))
    data = image_data(tmp_path)
    files = sorted(data.extras["files_train"] + data.extras["files_test"])
    assert files == ["a/0.png", "a/1.png", "b/0.png", "b/1.png", "b/nested/2.PNG"]
    assert data.class_names == ("a", "b")


def test_image_data_corrupt_image_is_named(tmp_path: Path) -> None:
    _grey_folder(tmp_path)
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"^Cannot read image '.*b/broken\.png' \(.*\); fix, convert or remove the"):
        image_data(tmp_path, test_fraction=0.5)


def test_image_data_truncated_image_is_named(tmp_path: Path) -> None:
    _grey_folder(tmp_path)
    _write(tmp_path / "a" / "2.png", np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8))
    whole = (tmp_path / "a" / "2.png").read_bytes()
    (tmp_path / "a" / "2.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"^Cannot read image '.*a/2\.png'") as caught:
        image_data(tmp_path, image_size=2)
    assert "\n" not in str(caught.value)


def test_image_data_sizes_must_agree_without_image_size(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "0.png", np.zeros((2, 2), np.uint8))
    _write(tmp_path / "a" / "1.png", np.zeros((2, 2), np.uint8))
    _write(tmp_path / "b" / "0.png", np.zeros((3, 5), np.uint8))
    sizes = r"(2x2 but '.*' is 3x5|3x5 but '.*' is 2x2)"
    with pytest.raises(DataError, match=rf"^Images in '.*' differ in size: '.*' is {sizes} \(height x width\); pass "):
        image_data(tmp_path)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"a/0.png": True, "b/readme.txt": False}, r"^Class folder '.*b' holds no images \(\.png, \.jpg"),
        ({"only/0.png": True}, r"^Image folder '.*' has only the class folder 'only'; classification needs two"),
        ({"0.png": True}, r"^Image folder '.*' has no class sub-folders \(its images must go into sub-folders\);"),
        ({"a/0.png": True, "b/0.png": True}, r"^Every class in '.*' holds a single image, so none can be held out"),
        ({"train/a/0.png": True, "train/b/0.png": True, "test/c/0.png": True},
         r"^'.*test' has class folders \['c'\] that '.*train' lacks; test classes must also be training classes\.$"),
    ],
    ids=["empty-class", "single-class", "no-class-folders", "single-images", "unknown-test-class"],
)
def test_image_data_bad_layouts_raise_data_error(tmp_path: Path, layout: dict[str, bool], message: str) -> None:
    for name, is_image in layout.items():
        if is_image:
            _write(tmp_path / name, np.zeros((2, 2), np.uint8))
        else:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("not an image")
    with pytest.raises(DataError, match=message):
        image_data(tmp_path)


def test_image_data_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^Image folder '.*nowhere' does not exist or is not a folder; images:DIR"):
        image_data(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_size": (2, 0)}, r"^image_size must be an integer >= 1, got 0"),
        ({"image_size": "28"}, r"^image_size must be an integer or a \(height, width\) pair, got '28'"),
        ({"channels": "cmyk"}, r"^Unknown channels 'cmyk'; choose one of 'grey', 'rgb'\.$"),
        ({"normalize": "zscore"}, r"^Unknown normalize 'zscore'; choose one of 'auto', 'none'\.$"),
        ({"normalize": {"mean": [0.5], "std": [0.0]}}, r"^normalize std must be > 0 for every channel"),
        ({"normalize": {"mean": [0.5, 0.5], "std": [1.0, 1.0]}},
         r"^normalize gives 2 mean and 2 std values but the images have 1 channel\(s\) \(grey\)"),
        ({"test_fraction": 0}, r"^test_fraction must be a number strictly between 0 and 1"),
    ],
)
def test_image_data_invalid_options_raise_config_error(tmp_path: Path, options: dict, message: str) -> None:
    _grey_folder(tmp_path)
    with pytest.raises(ConfigError, match=message):
        image_data(tmp_path, **options)


def test_image_data_checks_memory_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _grey_folder(tmp_path)
    opened: list[Path] = []
    real_open = Image.open

    def counting_open(path: Path, *args: object, **kwargs: object) -> Image.Image:
        opened.append(path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(images_module.Image, "open", counting_open)
    monkeypatch.setenv(MEMORY_ENV, "100B")
    with pytest.raises(LimitError, match=r"^4 images of 1x2x3 from '.*' would need about 120 B, more than the memory "
                       r"budget of 100 B"):
        image_data(tmp_path)
    assert len(opened) == 1  # only the first image's header was read

"""data_from_source: every --data form builds the same bundle as its builder; misuse raises ConfigError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mechscope.data import (
    DataBundle,
    data_from_source,
    digits_data,
    image_data,
    modular_data,
    npz_data,
    safetensors_data,
)
from mechscope.errors import ConfigError, DataError


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    np.savez(tmp_path / "d.npz", x=np.arange(20, dtype=np.float32).reshape(10, 2), y=np.arange(10) % 2)
    return tmp_path / "d.npz"


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    for c in ("a", "b"):
        for i in range(3):
            (tmp_path / "img" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((3, 3), 40 * i + (c == "b"), np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    return tmp_path / "img"


def test_data_from_source_npz_forms(npz_file: Path) -> None:
    expected = npz_data(npz_file, test_fraction=0.3, seed=2)
    assert data_from_source(f"npz:{npz_file}", test_fraction=0.3, seed=2) == expected
    assert data_from_source(str(npz_file), test_fraction=0.3, seed=2) == expected


def test_data_from_source_safetensors_forms(tmp_path: Path) -> None:
    saved = DataBundle.from_tensors(torch.randn(6, 2), torch.tensor([0, 1] * 3)).save(tmp_path / "d.safetensors")
    assert data_from_source(f"safetensors:{tmp_path / 'd.safetensors'}") == saved
    assert data_from_source(str(tmp_path / "d.safetensors")) == saved
    assert safetensors_data(tmp_path / "d.safetensors") == saved


def test_data_from_source_images_with_options(image_dir: Path) -> None:
    built = data_from_source(f"images:{image_dir}", image_size=(2, 2), channels="rgb", normalize="none", seed=1)
    assert built == image_data(image_dir, image_size=(2, 2), channels="rgb", normalize="none", seed=1)
    assert built.x_train.shape[1:] == (3, 2, 2)
    assert data_from_source(f"images:{image_dir}").spec["normalize"] != "none"  # None means "auto"


def test_data_from_source_json_spec_file(tmp_path: Path) -> None:
    data = modular_data(3, "*", seed=4)
    (tmp_path / "spec.json").write_text(json.dumps(data.spec))
    assert data_from_source(str(tmp_path / "spec.json")) == data


def test_data_from_source_builtin_digits() -> None:
    assert data_from_source("digits", test_fraction=0.5, seed=1) == digits_data("digits", test_fraction=0.5, seed=1)


def test_data_from_source_idx_directory(mnist_dir: Path) -> None:
    assert data_from_source(f"idx:{mnist_dir}") == digits_data(f"idx:{mnist_dir}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("csv:data.csv", r"^Unknown data source 'csv:data\.csv'; use one of images:DIR, npz:FILE, safetensors:FILE, "
                         r"FILE\.json \(a saved data spec\), digits, mnist5k, idx:DIR\.$"),
        ("mnist", r"^Unknown data source 'mnist'; use one of images:DIR"),
        ("", r"^--data must name a data source, got ''"),
        ("npz:", r"^--data 'npz:' names no path after the colon; write e\.g\. npz:my_data\.$"),
        ("images: ", r"^--data 'images:' names no path after the colon"),
    ],
)
def test_data_from_source_unknown_forms_raise_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        data_from_source(text)


@pytest.mark.parametrize("source", ["digits", "npz:d.npz", "spec.json"])
def test_data_from_source_image_options_need_an_image_folder(source: str) -> None:
    with pytest.raises(ConfigError, match=rf"^image_size, channels apply only to image folders \(images:DIR\), but "
                       rf"--data is '{source}'; drop them or point --data at an image folder\.$"):
        data_from_source(source, image_size=28, channels="grey")


def test_data_from_source_spec_file_fixes_its_own_split(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps(modular_data(3).spec))
    with pytest.raises(ConfigError, match=r"is a saved data spec, which records its own split; drop test_fraction"):
        data_from_source(str(tmp_path / "spec.json"), seed=3)


def test_data_from_source_bad_spec_file(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("{not json")
    with pytest.raises(DataError, match=r"^Data spec file '.*spec\.json' is not readable JSON \("):
        data_from_source(str(tmp_path / "spec.json"))
    with pytest.raises(DataError, match=r"^Data spec file '.*absent\.json' does not exist"):
        data_from_source(str(tmp_path / "absent.json"))

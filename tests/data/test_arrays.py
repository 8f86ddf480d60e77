"""npz_data and safetensors_data: round trips through the spec, header checks, and one-line errors naming the file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mechscope.data import DataBundle, load_data, npz_data, safetensors_data
from mechscope.errors import ConfigError, DataError, LimitError
from mechscope.limits import MEMORY_ENV


def _round_trip(bundle: DataBundle) -> DataBundle:
    return load_data(json.loads(json.dumps(bundle.spec)))


def test_npz_data_split_rebuilds_from_spec_in_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    monkeypatch.chdir(tmp_path)
    np.savez("data.npz", x=x, y=y, class_names=np.array(["zero", "one", "two"]), notes=np.arange(2))
    data = npz_data("data.npz", test_fraction=0.3, seed=4)
    assert data.spec == {"kind": "npz", "path": str(tmp_path / "data.npz"), "test_fraction": 0.3, "seed": 4}
    order = torch.randperm(10, generator=torch.Generator().manual_seed(4))
    assert torch.equal(data.x_test, torch.from_numpy(x[order[:3].numpy()]).float())
    assert torch.equal(data.y_train, torch.from_numpy(y[order[3:].numpy()]))
    assert data.class_names == ("zero", "one", "two") and data.n_classes == 3
    monkeypatch.chdir(tmp_path.parent)
    assert _round_trip(data) == data


def test_npz_data_compressed_file_with_its_own_split(tmp_path: Path) -> None:
    np.savez_compressed(
        tmp_path / "d.npz", x=np.ones((4, 2), np.float32), y=np.array([0.5, 1, 2, 3], np.float32),
        x_test=np.zeros((2, 2), np.float32), y_test=np.array([7.0, 8.0], np.float32),
    )
    data = npz_data(tmp_path / "d.npz")
    assert data.task == "regression" and data.spec["test_fraction"] is None
    assert data.x_train.shape == (4, 2) and data.y_test.tolist() == [7.0, 8.0]
    assert _round_trip(data) == data


def test_npz_data_token_ids_become_int64(tmp_path: Path) -> None:
    x = np.array([[1, 5, 2], [0, 0, 3], [4, 4, 4], [2, 1, 0], [3, 3, 1]], dtype=np.uint8)
    np.savez(tmp_path / "tokens.npz", x=x, y=x[:, -1].astype(np.int32))
    data = npz_data(tmp_path / "tokens.npz", seed=1)
    assert data.x_train.dtype == torch.int64 and data.x_train.shape[1:] == (3,)
    assert torch.equal(torch.cat([data.x_train, data.x_test])[:, -1], torch.cat([data.y_train, data.y_test]))
    assert data.n_classes == 5  # labels 0..4
    assert _round_trip(data) == data


def test_safetensors_data_reads_metadata_and_rebuilds(tmp_path: Path) -> None:
    x = torch.randn(6, 2, 2, dtype=torch.float16)
    y = torch.tensor([0, 1, 0, 1, 0, 1], dtype=torch.int16)
    save_file({"x": x, "y": y, "ignored": torch.zeros(1)}, str(tmp_path / "d.safetensors"),
              metadata={"n_classes": "4", "class_names": '["a", "b", "c", "d"]'})
    data = safetensors_data(tmp_path / "d.safetensors", test_fraction=0.5)
    assert data.n_classes == 4 and data.class_names == ("a", "b", "c", "d")
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert torch.equal(torch.cat([data.x_train, data.x_test]).sort(dim=0).values, x.float().sort(dim=0).values)
    assert _round_trip(data) == data


def test_safetensors_data_task_metadata_makes_integer_targets_regression(tmp_path: Path) -> None:
    save_file({"x": torch.ones(3, 1), "y": torch.tensor([1, 2, 3])}, str(tmp_path / "d.safetensors"),
              metadata={"task": "regression"})
    data = safetensors_data(tmp_path / "d.safetensors")
    assert data.task == "regression" and data.y_train.dtype == torch.float32


def test_saved_bundle_loads_through_safetensors_data(tmp_path: Path) -> None:
    data = DataBundle.from_tensors(torch.randint(0, 9, (8, 4)), torch.randint(0, 3, (8, 4)), n_classes=3)
    saved = data.save(tmp_path / "tokens.safetensors")
    assert safetensors_data(tmp_path / "tokens.safetensors") == saved


def _garbage(path: Path) -> Path:
    path.write_bytes(b"\x00\x01 not an archive")
    return path


@pytest.mark.parametrize(
    ("build", "name", "message"),
    [
        (lambda d: d / "missing.npz", "npz",
         r"^Data file '.*missing\.npz' does not exist; npz:FILE expects a \.npz file holding arrays x and y"),
        (lambda d: d, "npz", r"^Data path '.*' is not a file; npz:FILE expects a \.npz file\.$"),
        (lambda d: _garbage(d / "data.txt"), "npz",
         r"^Data file '.*data\.txt' is not a \.npz file \(its extension is '\.txt'\); write one with np\.savez"),
        (lambda d: _garbage(d / "data.npz"), "npz",
         r"^'.*data\.npz' is not a readable \.npz file \(File is not a zip file\); write one with np\.savez"),
        (lambda d: _garbage(d / "data.safetensors"), "safetensors",
         r"^'.*data\.safetensors' is not a readable \.safetensors file \(no valid header length in its first 8 "),
    ],
    ids=["missing", "directory", "extension", "garbage-npz", "garbage-safetensors"],
)
def test_array_data_bad_files_raise_one_line_naming_the_file(tmp_path: Path, build, name: str, message: str) -> None:
    loader = npz_data if name == "npz" else safetensors_data
    with pytest.raises(DataError, match=message) as caught:
        loader(build(tmp_path))
    assert "\n" not in str(caught.value)


def test_npz_data_missing_arrays_are_named_with_what_the_file_holds(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x_train=np.ones((2, 2)), y_train=np.ones(2))
    message = (
        r"^'.*d\.npz' has no array 'x'; it holds \['x_train', 'y_train'\]\. A data file needs x \(inputs\) and y "
        r"\(targets\), optionally x_test and y_test \(rename x_train to x\)\.$"
    )
    with pytest.raises(DataError, match=message):
        npz_data(tmp_path / "d.npz")


def test_safetensors_data_missing_y_is_named(tmp_path: Path) -> None:
    save_file({"x": torch.ones(2, 2)}, str(tmp_path / "d.safetensors"))
    with pytest.raises(DataError, match=r"has no array 'y'; it holds \['x'\]\."):
        safetensors_data(tmp_path / "d.safetensors")


def test_npz_data_test_arrays_come_in_pairs(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((2, 2)), y=np.ones(2), x_test=np.ones((1, 2)))
    with pytest.raises(DataError, match=r"has x_test but no y_test; it holds \['x', 'x_test', 'y'\]\. Store both"):
        npz_data(tmp_path / "d.npz")


def test_npz_data_object_arrays_are_refused_before_unpickling(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.ones(2))
    with pytest.raises(DataError, match=r"^In '.*d\.npz': array 'x' holds Python objects \(dtype object\), which are "
                       r"never unpickled"):
        npz_data(tmp_path / "d.npz")


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.ones((2, 2), bool), np.ones(2), r"array 'x' has dtype bool, which is not usable; store float features"),
        (np.ones((2, 2)), np.ones(2, np.complex64), r"array 'y' has dtype complex64, which is not usable; store int"),
        (np.ones((2, 2)), np.array(["a", "b"]), r"array 'y' has dtype <U1, which is not usable"),
    ],
)
def test_npz_data_wrong_dtypes_name_the_file_and_array(
    tmp_path: Path, x: np.ndarray, y: np.ndarray, message: str
) -> None:
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(DataError, match=rf"^In '.*d\.npz': {message}"):
        npz_data(tmp_path / "d.npz")


def test_safetensors_data_bool_dtype_is_read_from_the_header(tmp_path: Path) -> None:
    save_file({"x": torch.ones(2, 2), "y": torch.ones(2, dtype=torch.bool)}, str(tmp_path / "d.safetensors"))
    with pytest.raises(DataError, match=r"^In '.*d\.safetensors': array 'y' has dtype BOOL, which is not usable"):
        safetensors_data(tmp_path / "d.safetensors")


def test_array_data_validation_errors_name_the_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.ones(2, np.int64))
    with pytest.raises(DataError, match=r"^In '.*d\.npz': x and y differ in length: 3 vs 2; pass one target per input"):
        npz_data(tmp_path / "d.npz")


def test_safetensors_data_bad_metadata_is_named(tmp_path: Path) -> None:
    save_file({"x": torch.ones(2, 1), "y": torch.tensor([0, 1])}, str(tmp_path / "d.safetensors"),
              metadata={"n_classes": "two"})
    with pytest.raises(DataError, match=r"^In '.*d\.safetensors': metadata n_classes is 'two', not a whole number\.$"):
        safetensors_data(tmp_path / "d.safetensors")


def test_array_data_test_fraction_with_a_fixed_split_raises_config_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((2, 1)), y=np.ones(2), x_test=np.ones((1, 1)), y_test=np.ones(1))
    with pytest.raises(ConfigError, match=r"^test_fraction=0\.1 cannot apply to '.*d\.npz': its x_test and y_test fix"):
        npz_data(tmp_path / "d.npz", test_fraction=0.1)


def test_array_data_memory_is_checked_from_the_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((100, 10)), y=np.ones(100))
    monkeypatch.setenv(MEMORY_ENV, "8KB")
    read = []
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: read.append(args))
    # raw 8,800 bytes + 2 x 4,400 bytes as float32
    with pytest.raises(LimitError, match=r"^the arrays of '.*d\.npz' would need about 17\.2 KB, more than the memory "
                       r"budget of 8\.0 KB \(MECHSCOPE_MAX_MEMORY=8KB\)"):
        npz_data(tmp_path / "d.npz")
    assert not read


def test_npz_data_truncated_archive_is_not_readable(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((50, 4)), y=np.ones(50))
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"^'.*d\.npz' is not a readable \.npz file"):
        npz_data(tmp_path / "d.npz")
    assert not zipfile.is_zipfile(tmp_path / "d.npz")

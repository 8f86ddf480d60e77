"""Turn a `--data` value from the command line into a DataBundle.

Accepted forms (SOURCE_FORMS):
    images:DIR          a folder with one sub-folder of images per class (`image_data`)
    npz:FILE            arrays x, y (optionally x_test, y_test) in a .npz file (`npz_data`)
    safetensors:FILE    the same in a .safetensors file (`safetensors_data`)
    FILE.json           a bundle's spec saved as JSON (`load_data`)
    FILE.npz, FILE.safetensors   as npz:FILE and safetensors:FILE
    digits, mnist5k, idx:DIR     the built-in digit images (`digits_data`)

Example:
    >>> data = data_from_source("images:~/pets", image_size=32)
    >>> data = data_from_source("npz:data.npz", test_fraction=0.1, seed=3)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mechscope.data.arrays import npz_data, safetensors_data
from mechscope.data.bundle import DataBundle
from mechscope.data.digits import DIGIT_SOURCES, digits_data
from mechscope.data.images import ImageSize, Normalize, image_data
from mechscope.data.registry import load_data
from mechscope.errors import ConfigError, DataError

__all__ = ["data_from_source", "SOURCE_FORMS"]

SOURCE_FORMS: tuple[str, ...] = (
    "images:DIR",
    "npz:FILE",
    "safetensors:FILE",
    "FILE.json (a saved data spec)",
    "digits",
    "mnist5k",
    "idx:DIR",
)
"""The forms `data_from_source` accepts, for help texts and messages."""

_MAX_SPEC_BYTES = 16 << 20  # a spec file larger than this is not a spec


def data_from_source(
    text: str,
    *,
    image_size: ImageSize | None = None,
    channels: str | None = None,
    normalize: Normalize | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
) -> DataBundle:
    """Build the bundle a `--data` value names.

    Args:
        text: One of SOURCE_FORMS, e.g. "images:photos", "npz:data.npz", "spec.json",
            "mnist5k".
        image_size: Resize images to this side or (height, width); images:DIR only.
        channels: "grey" or "rgb"; images:DIR only (None: from the first image).
        normalize: "auto", "none" or {"mean": [...], "std": [...]}; images:DIR only
            (None: "auto").
        test_fraction: Share held out when the source does not fix the split; None
            uses the source's default. Not for a .json spec.
        seed: Seed of the split. A .json spec records its own, so only 0 is accepted.

    Returns:
        The DataBundle; its spec rebuilds it with `load_data`.

    Raises:
        ConfigError: an unknown form (the message lists SOURCE_FORMS), an empty path,
            image options for a source that is not images:DIR, or split options for
            a .json spec (plus any error of the builder).
        DataError: the file or folder is missing or malformed.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--data must name a data source, got {text!r}; use one of {', '.join(SOURCE_FORMS)}.")
    text = text.strip()
    prefix, _, rest = text.partition(":")
    image_options = {"image_size": image_size, "channels": channels, "normalize": normalize}
    if prefix == "images":
        return image_data(
            _path(text, rest),
            image_size=image_size,
            channels=channels,
            normalize="auto" if normalize is None else normalize,
            test_fraction=test_fraction,
            seed=seed,
        )
    _refuse_image_options(text, image_options)
    if prefix in ("npz", "safetensors"):
        builder = npz_data if prefix == "npz" else safetensors_data
        return builder(_path(text, rest), test_fraction=test_fraction, seed=seed)
    if text in DIGIT_SOURCES or prefix == "idx":
        return digits_data(text, test_fraction=test_fraction, seed=seed)
    suffix = Path(text).suffix.lower()
    if suffix == ".json":
        return _from_spec_file(text, test_fraction, seed)
    if suffix == ".npz":
        return npz_data(text, test_fraction=test_fraction, seed=seed)
    if suffix == ".safetensors":
        return safetensors_data(text, test_fraction=test_fraction, seed=seed)
    raise ConfigError(f"Unknown data source {text!r}; use one of {', '.join(SOURCE_FORMS)}.")


def _path(text: str, rest: str) -> str:
    if not rest.strip():
        raise ConfigError(f"--data {text!r} names no path after the colon; write e.g. {text}my_data.")
    return rest


def _refuse_image_options(text: str, options: dict[str, Any]) -> None:
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)} apply only to image folders (images:DIR), but --data is {text!r}; drop "
            f"{'them' if len(given) > 1 else 'it'} or point --data at an image folder."
        )


def _from_spec_file(text: str, test_fraction: float | None, seed: int) -> DataBundle:
    """The bundle a JSON spec file describes; the spec fixes its own split."""
    if test_fraction is not None or seed != 0:
        raise ConfigError(
            f"{text!r} is a saved data spec, which records its own split; drop test_fraction and seed, or edit "
            "the spec file."
        )
    path = Path(text).expanduser()
    if not path.is_file():
        raise DataError(f"Data spec file {str(path)!r} does not exist; write one with json.dump(bundle.spec, file).")
    try:
        if path.stat().st_size > _MAX_SPEC_BYTES:
            raise ValueError(f"it is larger than {_MAX_SPEC_BYTES >> 20} MB")
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(
            f"Data spec file {str(path)!r} is not readable JSON ({err}); write one with json.dump(bundle.spec, file)."
        ) from err
    return load_data(spec)

"""Your own arrays from .npz and .safetensors files: x and y, optionally x_test and y_test.

A data file holds the arrays `x` (inputs, (batch, ...)) and `y` (targets, (batch,) or
(batch, ...)), and optionally `x_test` and `y_test` (both or neither); with them, x and y
are the training split and the file fixes the split. Other arrays are ignored. Floating
x is stored as float32; integer x of shape (batch, pos) is token ids for sequence models
(int64). Integer y means classification, floating y regression (see
`DataBundle.from_tensors` for every rule).

Optional class information:
    - .npz: an array `class_names` of strings (one per class).
    - .safetensors: metadata entries "class_names" (a JSON list of strings), "n_classes"
      and "task" ("classification" or "regression"); `DataBundle.save` writes them.

Shapes and dtypes are read from the file headers and the memory budget is checked
before any array is read; npz files are read without unpickling (object arrays refused).

Example:
    >>> np.savez("data.npz", x=np.random.rand(100, 3).astype(np.float32), y=np.arange(100) % 2)
    >>> data = npz_data("data.npz")
    >>> load_data(data.spec) == data
    True
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from mechscope.data._validate import check_fraction, check_seed
from mechscope.data.bundle import DEFAULT_TEST_FRACTION, DataBundle, TensorLike
from mechscope.errors import ConfigError, DataError, LimitError
from mechscope.limits import MAX_CLASSES, check_memory

__all__ = ["npz_data", "safetensors_data", "ARRAY_NAMES"]

ARRAY_NAMES: tuple[str, ...] = ("x", "y", "x_test", "y_test")
"""The arrays a data file may hold (x and y required)."""

_SUFFIXES = {"npz": ".npz", "safetensors": ".safetensors"}
_WRITE_HINT = {
    "npz": "write one with np.savez(path, x=x, y=y)",
    "safetensors": "write one with safetensors.torch.save_file({'x': x, 'y': y}, path) or DataBundle.save(path)",
}
_SAFETENSORS_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float", 8),
    "F32": ("float", 4),
    "F16": ("float", 2),
    "BF16": ("float", 2),
    "I64": ("int", 8),
    "I32": ("int", 4),
    "I16": ("int", 2),
    "I8": ("int", 1),
    "U64": ("int", 8),
    "U32": ("int", 4),
    "U16": ("int", 2),
    "U8": ("int", 1),
    "BOOL": ("bool", 1),
}
_MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own bound on a header
_NUMPY_KINDS = {
    "f": "float", "i": "int", "u": "int", "b": "bool", "c": "complex", "O": "object", "U": "str", "S": "str"
}


@dataclass(frozen=True)
class _Header:
    """What a file says about one array before it is read."""

    shape: tuple[int, ...]
    kind: str  # "float", "int", "bool", "complex", "object", "str" or "other"
    dtype: str  # as the file spells it
    itemsize: int  # bytes per element


def npz_data(path: str | os.PathLike[str], *, test_fraction: float | None = None, seed: int = 0) -> DataBundle:
    """Load x and y (optionally x_test and y_test) from a numpy .npz file.

    Args:
        path: The .npz file (from np.savez or np.savez_compressed).
        test_fraction: Share held out when the file has no x_test/y_test; None uses
            0.2. Must be None when the file fixes the split.
        seed: Seed of the split permutation (see `DataBundle.from_tensors`).

    Returns:
        A DataBundle whose spec is {"kind": "npz", "path": <absolute path>,
        "test_fraction": ..., "seed": ...}, so `load_data(spec)` rebuilds it anywhere.

    Raises:
        DataError: the file is missing, not an .npz, lacks x or y, or holds unusable
            arrays (the message names the file).
        ConfigError: test_fraction or seed is invalid, or test_fraction is given for a
            file that holds x_test and y_test.
        LimitError: reading the arrays would need more than the memory budget.
    """
    return _array_bundle("npz", path, test_fraction, seed)


def safetensors_data(
    path: str | os.PathLike[str], *, test_fraction: float | None = None, seed: int = 0
) -> DataBundle:
    """Load x and y (optionally x_test and y_test) from a .safetensors file.

    Args:
        path: The .safetensors file (e.g. written by `DataBundle.save`).
        test_fraction: Share held out when the file has no x_test/y_test; None uses
            0.2. Must be None when the file fixes the split.
        seed: Seed of the split permutation (see `DataBundle.from_tensors`).

    Returns:
        A DataBundle whose spec is {"kind": "safetensors", "path": <absolute path>,
        "test_fraction": ..., "seed": ...}, so `load_data(spec)` rebuilds it anywhere.

    Raises:
        DataError: the file is missing, not a safetensors file, lacks x or y, holds
            unusable arrays or malformed metadata (the message names the file).
        ConfigError: test_fraction or seed is invalid, or test_fraction is given for a
            file that holds x_test and y_test.
        LimitError: reading the arrays would need more than the memory budget.
    """
    return _array_bundle("safetensors", path, test_fraction, seed)


def _array_bundle(kind: str, path: str | os.PathLike[str], test_fraction: float | None, seed: int) -> DataBundle:
    """Read, check and bundle the arrays of one data file."""
    seed = check_seed(seed)
    file = _data_file(kind, path)
    where = f"In {str(file)!r}"
    headers, metadata = _npz_headers(file) if kind == "npz" else _safetensors_headers(file)
    used = _check_names(file, headers)
    has_split = "x_test" in used
    if has_split and test_fraction is not None:
        raise ConfigError(
            f"test_fraction={test_fraction!r} cannot apply to {str(file)!r}: its x_test and y_test fix the split; "
            "leave test_fraction=None."
        )
    fraction = None if has_split else (
        DEFAULT_TEST_FRACTION if test_fraction is None else check_fraction("test_fraction", test_fraction)
    )
    for name in used:
        _check_header(where, name, headers[name])
    raw = sum(math.prod(headers[name].shape) * headers[name].itemsize for name in used)
    converted = sum(math.prod(headers[name].shape) * (4 if headers[name].kind == "float" else 8) for name in used)
    check_memory(raw + 2 * converted, f"the arrays of {str(file)!r}")
    arrays, options = _read_npz(file, used, headers) if kind == "npz" else _read_safetensors(file, used, metadata)
    spec = {"kind": kind, "path": str(file), "test_fraction": fraction, "seed": seed}
    try:
        return DataBundle.from_tensors(
            arrays["x"],
            arrays["y"],
            x_test=arrays.get("x_test"),
            y_test=arrays.get("y_test"),
            test_fraction=DEFAULT_TEST_FRACTION if fraction is None else fraction,
            seed=seed,
            spec=spec,
            **options,
        )
    except (DataError, ConfigError, LimitError) as err:
        raise type(err)(f"{where}: {err}") from err


def _data_file(kind: str, path: Any) -> Path:
    """The absolute path of an existing file with the kind's extension, or DataError."""
    suffix = _SUFFIXES[kind]
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigError(f"path must name a {suffix} file, got {path!r}.")
    file = Path(path).expanduser().resolve()
    if not file.exists():
        raise DataError(
            f"Data file {str(file)!r} does not exist; {kind}:FILE expects a {suffix} file holding arrays x and y "
            "(optionally x_test and y_test)."
        )
    if not file.is_file():
        raise DataError(f"Data path {str(file)!r} is not a file; {kind}:FILE expects a {suffix} file.")
    if file.suffix.lower() != suffix:
        raise DataError(
            f"Data file {str(file)!r} is not a {suffix} file (its extension is {file.suffix or 'missing'!r}); "
            f"{_WRITE_HINT[kind]}, or use the source that matches the file."
        )
    return file


def _not_readable(kind: str, file: Path, reason: object) -> DataError:
    return DataError(f"{str(file)!r} is not a readable {_SUFFIXES[kind]} file ({reason}); {_WRITE_HINT[kind]}.")


def _npz_headers(file: Path) -> tuple[dict[str, _Header], dict[str, str]]:
    """Shape and dtype of every array in an .npz, from the .npy headers inside the zip."""
    headers: dict[str, _Header] = {}
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:  # 2.0 and 3.0 share the layout
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                kind = "object" if dtype.hasobject else _NUMPY_KINDS.get(dtype.kind, "other")
                headers[info.filename[: -len(".npy")]] = _Header(tuple(shape), kind, str(dtype), dtype.itemsize)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as err:
        raise _not_readable("npz", file, err) from err
    return headers, {}


def _safetensors_headers(file: Path) -> tuple[dict[str, _Header], dict[str, str]]:
    """Shape and dtype of every tensor in a .safetensors file, from its JSON header, plus its metadata."""
    try:
        with open(file, "rb") as handle:
            prefix = handle.read(8)
            size = os.fstat(handle.fileno()).st_size
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(_MAX_HEADER_BYTES, size - 8):
                raise ValueError("no valid header length in its first 8 bytes")
            header = json.loads(handle.read(length))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise _not_readable("safetensors", file, err) from err
    if not isinstance(header, dict):
        raise _not_readable("safetensors", file, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    headers: dict[str, _Header] = {}
    for name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape) or not isinstance(
            dtype, str
        ):
            raise _not_readable("safetensors", file, f"the header entry of {name!r} is malformed")
        kind, itemsize = _SAFETENSORS_DTYPES.get(dtype, ("other", 0))
        headers[name] = _Header(tuple(shape), kind, dtype, itemsize)
    if not isinstance(metadata, dict):
        raise _not_readable("safetensors", file, "its __metadata__ is not a JSON object")
    return headers, metadata


def _check_names(file: Path, headers: dict[str, _Header]) -> list[str]:
    """The ARRAY_NAMES present, or DataError naming what is missing and what the file holds."""
    present = sorted(headers)
    holds = f"it holds {present}" if present else "it holds no arrays"
    for name in ("x", "y"):
        if name not in headers:
            rename = f" (rename {name}_train to {name})" if f"{name}_train" in headers else ""
            raise DataError(
                f"{str(file)!r} has no array {name!r}; {holds}. A data file needs x (inputs) and y (targets), "
                f"optionally x_test and y_test{rename}."
            )
    if ("x_test" in headers) != ("y_test" in headers):
        given, missing = ("x_test", "y_test") if "x_test" in headers else ("y_test", "x_test")
        raise DataError(
            f"{str(file)!r} has {given} but no {missing}; {holds}. Store both x_test and y_test to fix the split, "
            "or neither to split x and y."
        )
    return [name for name in ARRAY_NAMES if name in headers]


def _check_header(where: str, name: str, header: _Header) -> None:
    """DataError unless the array is numeric (float or integer)."""
    if header.kind in ("float", "int"):
        return
    wanted = "float features or integer token ids" if name.startswith("x") else "integer class indices or float values"
    if header.kind == "object":
        raise DataError(
            f"{where}: array {name!r} holds Python objects (dtype object), which are never unpickled; save "
            f"numeric arrays instead ({wanted}), e.g. np.asarray({name}, dtype=np.float32)."
        )
    raise DataError(f"{where}: array {name!r} has dtype {header.dtype}, which is not usable; store {wanted}.")


def _read_npz(
    file: Path, used: list[str], headers: dict[str, _Header]
) -> tuple[dict[str, TensorLike], dict[str, Any]]:
    """The used arrays of an .npz (no pickles), plus class_names if it holds them."""
    names_header = headers.get("class_names")
    if names_header is not None and (
        names_header.kind != "str" or len(names_header.shape) != 1 or names_header.shape[0] > MAX_CLASSES
    ):
        raise DataError(
            f"In {str(file)!r}: class_names must be a 1-D array of strings (at most {MAX_CLASSES}), got "
            f"{names_header.dtype} of shape {names_header.shape}."
        )
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays: dict[str, TensorLike] = {name: archive[name] for name in used}
            names = None if names_header is None else archive["class_names"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise _not_readable("npz", file, err) from err
    options: dict[str, Any] = {}
    if names is not None:
        options["class_names"] = [
            n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()
        ]
    return arrays, options


def _read_safetensors(
    file: Path, used: list[str], metadata: dict[str, str]
) -> tuple[dict[str, TensorLike], dict[str, Any]]:
    """The used tensors of a .safetensors file, plus task, n_classes and class_names from its metadata."""
    try:
        with safe_open(str(file), framework="pt") as handle:
            arrays: dict[str, TensorLike] = {name: handle.get_tensor(name) for name in used}
    except (SafetensorError, OSError, ValueError) as err:
        raise _not_readable("safetensors", file, err) from err
    options: dict[str, Any] = {}
    if "task" in metadata:
        options["task"] = metadata["task"]
    if "n_classes" in metadata:
        text = metadata["n_classes"]
        if not isinstance(text, str) or not text.isdigit():
            raise DataError(f"In {str(file)!r}: metadata n_classes is {text!r}, not a whole number.")
        options["n_classes"] = int(text)
    if "class_names" in metadata:
        try:
            names = json.loads(metadata["class_names"])
        except (TypeError, ValueError):
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(
                f"In {str(file)!r}: metadata class_names must be a JSON list of strings, got "
                f"{metadata['class_names']!r}."
            )
        options["class_names"] = names
    return arrays, options

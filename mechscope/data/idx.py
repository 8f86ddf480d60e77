"""Read idx files (the MNIST container format), plain or gzip-compressed.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number
of dimensions n, then n big-endian uint32 sizes, then the values in big-endian
C order.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mechscope.errors import DataError

__all__ = ["read_idx", "IDX_DTYPES"]

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""idx type code -> big-endian numpy dtype."""

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str]) -> Tensor:
    """Parse one idx file into a tensor with the dimensions its header declares.

    Gzip compression is detected from the content, whatever the file name.

    Args:
        path: The idx file, e.g. "train-images-idx3-ubyte" or "t10k-labels-idx1-ubyte.gz".

    Returns:
        A tensor of the file's dtype (uint8 for MNIST images and labels), e.g.
        (batch, height, width) for an idx3 image file, (batch,) for labels.

    Raises:
        DataError: the file is missing or unreadable, its header has a bad magic
            number or type code, or its data is truncated or has trailing bytes.

    Example:
        >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape  # doctest: +SKIP
        torch.Size([60000, 28, 28])
    """
    file = Path(path)
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        raise DataError(
            f"idx file {str(file)!r} {what}; pass the path of an idx file such as "
            "'train-images-idx3-ubyte' or 't10k-labels-idx1-ubyte.gz'."
        )
    raw = _read_bytes(file)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        codes = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise DataError(
            f"{str(file)!r} is not an idx file: its magic number is {raw[:4].hex() or 'empty'!r}, expected "
            f"00 00, a type code ({codes}) and a dimension count >= 1 (e.g. 00000803 for images); "
            "check that the path names an (optionally gzipped) idx file."
        )
    dtype, n_dims = IDX_DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * n_dims
    if len(raw) < header_size:
        raise DataError(
            f"{str(file)!r} is truncated: its header declares {n_dims} dimensions ({header_size} header bytes) "
            f"but the file holds {len(raw)} bytes; download or copy the file again."
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "is truncated" if found < expected else f"has {found - expected} trailing bytes"
        raise DataError(
            f"{str(file)!r} {problem}: shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {found}; download or copy the file again."
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def _read_bytes(file: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip magic."""
    try:
        raw = file.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"Cannot read idx file {str(file)!r}: {exc}; check that it is a complete idx or gzipped idx file."
        ) from exc
    return raw

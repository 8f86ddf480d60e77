"""Read idx files (the MNIST container format), plain or gzip-compressed.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number
of dimensions n, then n big-endian uint32 sizes, then the values in big-endian
C order.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import torch
from torch import Tensor

from mechscope.errors import DataError
from mechscope.limits import check_memory

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
    with _Reader(file) as handle:
        head = handle.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or head[3] == 0:
            codes = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
            raise DataError(
                f"{str(file)!r} is not an idx file: its magic number is {head.hex() or 'empty'!r}, expected "
                f"00 00, a type code ({codes}) and a dimension count >= 1 (e.g. 00000803 for images); "
                "check that the path names an (optionally gzipped) idx file."
            )
        dtype, n_dims = IDX_DTYPES[head[2]], head[3]
        header_size = 4 + 4 * n_dims
        dims = handle.read(4 * n_dims)
        if len(dims) < 4 * n_dims:
            raise DataError(
                f"{str(file)!r} is truncated: its header declares {n_dims} dimensions ({header_size} header bytes) "
                f"but the file holds {len(head) + len(dims)} bytes; download or copy the file again."
            )
        shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4", count=n_dims))
        expected = math.prod(shape) * dtype.itemsize
        if handle.compressed:  # the size is known only by reading: bound the memory first
            check_memory(2 * expected, f"idx file {str(file)!r} (shape {shape} of {dtype.name})")
        else:
            found = file.stat().st_size - header_size
            if found != expected:
                raise DataError(_size_problem(file, shape, dtype, expected, found))
            check_memory(2 * expected, f"idx file {str(file)!r} (shape {shape} of {dtype.name})")
        body = handle.read(expected + 1)
    if len(body) != expected:
        raise DataError(_size_problem(file, shape, dtype, expected, len(body), exact=False))
    values = np.frombuffer(body, dtype=dtype).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def _size_problem(file: Path, shape: tuple[int, ...], dtype: np.dtype, expected: int, found: int,
                  *, exact: bool = True) -> str:
    if found < expected:
        problem = "is truncated"
    else:
        problem = f"has {found - expected} trailing bytes" if exact else "has trailing bytes"
    shown = found if exact or found <= expected else "more"
    return (f"{str(file)!r} {problem}: shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {shown}; download or copy the file again.")


class _Reader:
    """A file handle that reads plain or gzip-compressed bytes and turns read errors into DataError."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            with open(file, "rb") as probe:
                self.compressed = probe.read(2) == _GZIP_MAGIC
            self.handle: BinaryIO = cast(BinaryIO, gzip.open(file, "rb") if self.compressed else open(file, "rb"))
        except OSError as exc:
            raise DataError(f"Cannot read idx file {str(file)!r}: {exc}.") from exc

    def read(self, size: int) -> bytes:
        try:
            return self.handle.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"Cannot read idx file {str(self.file)!r}: {exc}; check that it is a complete idx or gzipped idx file."
            ) from exc

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

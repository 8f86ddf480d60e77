"""Build idx files byte by byte with struct, independently of mechscope's reader."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import torch

IDX_CODES: dict[torch.dtype, tuple[int, str]] = {
    torch.uint8: (0x08, "B"),
    torch.int8: (0x09, "b"),
    torch.int16: (0x0B, "h"),
    torch.int32: (0x0C, "i"),
    torch.float32: (0x0D, "f"),
    torch.float64: (0x0E, "d"),
}
"""dtype -> (idx type code, struct format character)."""

IdxWriter = Callable[..., Path]
"""The `write_idx` fixture: write_idx(name, values=None, *, payload=None, use_gzip=False) -> path."""


def idx_bytes(values: torch.Tensor) -> bytes:
    """The idx encoding of `values`: magic, big-endian uint32 sizes, big-endian data."""
    code, char = IDX_CODES[values.dtype]
    header = struct.pack(">BBBB", 0, 0, code, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape)
    flat = values.reshape(-1).tolist()
    return header + struct.pack(f">{len(flat)}{char}", *flat)

"""Weight files: safetensors (read without executing anything) and, on request, PyTorch state_dict pickles.

A `.pt`/`.pth`/`.bin` file is a pickle; unpickling can run code, so it is read only when the
caller passes `allow_pickle=True`, and then with `torch.load(weights_only=True)`, which
refuses anything but tensors and plain containers.

Example:
    >>> load_weights(model, "resnet.safetensors")
    >>> load_weights(model, "resnet.pt", allow_pickle=True)
"""

from __future__ import annotations

import json
import os
import pickle  # noqa: S403 - only for the error type torch.load(weights_only=True) raises
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from mechscope.errors import CheckpointError

__all__ = ["SAFE_SUFFIXES", "PICKLE_SUFFIXES", "load_weights", "read_state", "check_header", "check_state"]

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own bound on a header
_WRAPPERS = ("state_dict", "model_state_dict", "model", "module")  # keys training scripts nest a state_dict under


def load_weights(model: nn.Module, path: str | os.PathLike[str], *, allow_pickle: bool = False) -> nn.Module:
    """Load the state_dict in `path` into `model` (strict: every name and shape must match); return the model.

    Raises:
        CheckpointError: the file is missing, unreadable, a pickle without `allow_pickle`, or its
            tensors do not match the model (the message lists missing, unexpected and mis-shaped names).
    """
    file = Path(path)
    if file.suffix.lower() in SAFE_SUFFIXES and file.is_file():
        check_header(model, file)  # names and shapes from the header, before the tensors are read
    state = read_state(file, allow_pickle=allow_pickle)
    check_state(model, state, file)
    model.load_state_dict(state)
    return model


def read_state(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a state_dict (name -> tensor, on the CPU) from a safetensors file or, with `allow_pickle`, a .pt file.

    A pickle holding {"state_dict": {...}} (or "model_state_dict", "model", "module") is unwrapped.

    Raises:
        CheckpointError: see `load_weights`.
    """
    file = Path(path)
    where = repr(str(file))
    suffix = file.suffix.lower()
    if suffix not in SAFE_SUFFIXES + PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{where}: weights must be a .safetensors file, or a PyTorch state_dict "
            f"({', '.join(PICKLE_SUFFIXES)}) with --allow-pickle; got a {suffix or 'suffix-less'} file."
        )
    if not file.is_file():
        raise CheckpointError(f"No weights file at {where}.")
    if suffix in SAFE_SUFFIXES:
        try:
            return load_file(str(file))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{where} is not a readable safetensors file: {err}") from err
    if not allow_pickle:
        raise CheckpointError(
            f"{where} is a pickle-based PyTorch file, and unpickling can run code; convert it to .safetensors "
            "(safetensors.torch.save_file(model.state_dict(), 'model.safetensors')) or pass --allow-pickle "
            "(allow_pickle=True) to read it with torch.load(weights_only=True)."
        )
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{where} holds more than tensors (torch.load(weights_only=True) refused it: {first}); "
            "save model.state_dict() instead of the whole model."
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"{where} is not a readable PyTorch file: {err}") from err
    return _state_of(loaded, where)


def _state_of(loaded: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping) and not _is_state(loaded):
        nested = [key for key in _WRAPPERS if isinstance(loaded.get(key), Mapping) and _is_state(loaded[key])]
        if nested:
            loaded = loaded[nested[0]]
    if not isinstance(loaded, Mapping) or not _is_state(loaded):
        kind = type(loaded).__name__
        keys = f" with keys {sorted(map(str, loaded))[:6]}" if isinstance(loaded, Mapping) else ""
        raise CheckpointError(
            f"{where} holds a {kind}{keys}, not a state_dict (names -> tensors); save model.state_dict()."
        )
    return {str(k): v for k, v in loaded.items()}


def _is_state(value: Mapping[Any, Any]) -> bool:
    return len(value) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def check_header(model: nn.Module, weights_path: Path) -> None:
    """Check a safetensors header against the file size and the model, reading only the header.

    Raises:
        CheckpointError: the header is invalid, the file is truncated, or names/shapes differ from the model's.
    """
    where = repr(str(weights_path))
    try:
        size = weights_path.stat().st_size
        with open(weights_path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= length <= min(size - 8, _MAX_HEADER_BYTES):
                raise CheckpointError(
                    f"{where} is not a readable safetensors file: its header length is invalid; the file is "
                    "truncated or corrupt."
                )
            header = json.loads(handle.read(length).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{where} is not a readable safetensors file: {err}") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} is not a readable safetensors file: its header is not an object; it is corrupt.")
    shapes: dict[str, Any] = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{where}: the header entry {name!r} has no valid data offsets; the file is corrupt.")
        shapes[name] = entry.get("shape")
        end = max(end, offsets[1])
    if 8 + length + end != size:
        raise CheckpointError(
            f"{where} is {size} bytes but its header describes {8 + length + end}; the file is truncated or corrupt."
        )
    _raise_mismatch(model, {k: tuple(v) if isinstance(v, list) else v for k, v in shapes.items()}, weights_path)


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], weights_path: Path) -> None:
    """Check that `state` has exactly the model's names and shapes.

    Raises:
        CheckpointError: listing the missing, unexpected and mis-shaped names.
    """
    _raise_mismatch(model, {k: tuple(v.shape) for k, v in state.items()}, weights_path)


def _raise_mismatch(model: nn.Module, shapes: Mapping[str, Any], weights_path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [f"{k}: file {shapes[k]} vs model {expected[k]}" for k in expected if k in shapes and shapes[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing {missing[:5]}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if unexpected:
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        problems.append(f"unexpected {unexpected[:5]}{more}")
    if wrong:
        problems.append("shape mismatch " + "; ".join(wrong[:5]))
    if problems:
        raise CheckpointError(f"{str(weights_path)!r} does not match the model: " + ", ".join(problems))

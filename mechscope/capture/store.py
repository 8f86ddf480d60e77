"""ActivationStore: named tensors recorded from a model, in memory or memory-mapped on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mechscope.errors import DataError, LayerNameError, close_matches

__all__ = ["ActivationStore", "Kind", "is_activation_folder"]

Kind = Literal["act", "input", "grad"]
_INDEX = "activations.json"


class ActivationStore:
    """Activations (and optionally inputs and gradients) keyed by layer name."""

    def __init__(self) -> None:
        self._parts: dict[Kind, dict[str, list[Tensor]]] = {"act": {}, "input": {}, "grad": {}}
        self._grad_parts: dict[str, list[Tensor | None]] = {}
        self._done: dict[Kind, dict[str, Tensor]] = {"act": {}, "input": {}, "grad": {}}

    # -- filling (used by capture/record) -------------------------------------------------
    def _append(self, kind: Kind, name: str, tensor: Tensor) -> int:
        parts = self._parts[kind].setdefault(name, [])
        parts.append(tensor)
        self._done[kind].pop(name, None)
        return len(parts) - 1

    def _copy_part(self, kind: Kind, name: str, index: int) -> None:
        # capture's guard: a part kept without a copy is about to be exposed to in-place changes
        parts = self._parts[kind][name]
        parts[index] = parts[index].clone()
        self._done[kind].pop(name, None)

    def _reserve_grad(self, name: str) -> int:
        slots = self._grad_parts.setdefault(name, [])
        slots.append(None)
        return len(slots) - 1

    def _set_grad(self, name: str, index: int, grad: Tensor) -> None:
        self._grad_parts[name][index] = grad
        self._done["grad"].pop(name, None)

    def _set(self, kind: Kind, name: str, tensor: Tensor) -> None:
        self._parts[kind][name] = [tensor]
        self._done[kind][name] = tensor

    # -- reading ----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Layers with recorded activations, in recording order."""
        return list(self._parts["act"])

    def __contains__(self, name: object) -> bool:
        return name in self._parts["act"]

    def act(self, name: str) -> Tensor:
        """The layer's output over everything recorded, shape (batch, ...)."""
        return self._get("act", name)

    def input(self, name: str) -> Tensor:
        """The layer's first positional input (recorded with `inputs=True`)."""
        return self._get("input", name)

    def grad(self, name: str) -> Tensor:
        """The gradient at the layer's output (recorded with `grads=True` and `.backward()`)."""
        if name in self._grad_parts:
            parts = self._grad_parts[name]
            if any(p is None for p in parts):
                raise DataError(
                    f"No gradient reached layer {name!r}: call .backward() on a scalar inside the capture block, "
                    "and make sure the output depends on that layer."
                )
            self._parts["grad"][name] = [p for p in parts if p is not None]
        return self._get("grad", name)

    def _get(self, kind: Kind, name: str) -> Tensor:
        if name in self._done[kind]:
            return self._done[kind][name]
        parts = self._parts[kind].get(name)
        if not parts:
            known = list(self._parts[kind]) or list(self._parts["act"])
            hint = close_matches(name, known)
            extra = f" Did you mean {hint[0]!r}?" if hint else ""
            how = {"act": "", "input": " Pass inputs=True to capture.", "grad": " Pass grads=True and call backward()."}
            raise LayerNameError(f"No {kind} recorded for layer {name!r}; recorded: {known}.{extra}{how[kind]}")
        value = parts[0] if len(parts) == 1 else torch.cat(parts)
        self._done[kind][name] = value
        return value

    def as_dict(self) -> dict[str, Tensor]:
        """Every recorded activation by layer name."""
        return {name: self.act(name) for name in self.names}

    # -- disk -------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ActivationStore:
        """Open activations written by `record(..., out_dir=...)`, memory-mapped (no copy)."""
        root = Path(directory)
        index_path = root / _INDEX
        if not index_path.is_file():
            raise DataError(f"No activation index {str(index_path)!r}; record into this folder with out_dir= first.")
        try:
            index = json.loads(index_path.read_text())
            layers = index["layers"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"Activation index {str(index_path)!r} is malformed ({err}); record again.") from err
        store = cls()
        for name, entry in layers.items():
            path = root / entry["file"]
            try:
                array = np.load(path, mmap_mode="c")  # copy-on-write: tensors are writable, the file is not touched
            except (OSError, ValueError) as err:
                raise DataError(f"Activation file {str(path)!r} for layer {name!r} is unreadable: {err}") from err
            if list(array.shape) != entry["shape"]:
                raise DataError(
                    f"Activation file {str(path)!r} has shape {list(array.shape)}, index says {entry['shape']}; "
                    "the folder is incomplete: record again."
                )
            store._set("act", name, torch.from_numpy(array))
        return store


def is_activation_folder(path: Path) -> bool:
    """True when the folder `path` holds activations recorded by mechscope (by its index file)."""
    return (Path(path) / _INDEX).is_file()


def open_memmaps(folder: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.memmap]:
    """Create one float32 .npy memmap per layer in `folder` (a fresh temporary folder)."""
    return {
        name: np.lib.format.open_memmap(folder / _file_name(i), mode="w+", dtype=np.float32, shape=shape)
        for i, (name, shape) in enumerate(shapes.items())
    }


def finish_memmaps(folder: Path, maps: dict[str, np.memmap]) -> None:
    """Flush the memmaps and write the index (last: it marks the folder complete)."""
    layers = {}
    for i, (name, array) in enumerate(maps.items()):
        array.flush()
        layers[name] = {"file": _file_name(i), "shape": list(array.shape), "dtype": "float32"}
    (folder / _INDEX).write_text(json.dumps({"layers": layers}, indent=2))


def _file_name(i: int) -> str:
    # Layer names may hold characters a file system dislikes; the index maps names to files.
    return f"layer_{i:03d}.npy"

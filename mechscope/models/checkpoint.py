"""Checkpoints: safetensors weights plus a JSON description, written atomically, never pickled."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mechscope._version import __version__
from mechscope.atomic import check_output, recover, writing_folder
from mechscope.errors import CheckpointError, ConfigError, UnsupportedModelError
from mechscope.models.registry import build_model, model_spec

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "is_checkpoint",
    "check_checkpoint_out",
    "WEIGHTS_FILE",
    "META_FILE",
]

WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
_FORMAT = "mechscope-checkpoint"
_FORMAT_VERSION = 1
_MAX_META_BYTES = 64 << 20  # a checkpoint.json larger than this is not one of ours
_MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own bound on a header


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model and everything recorded about it."""

    path: Path  # the checkpoint folder
    model: nn.Module  # rebuilt model in eval mode, weights loaded
    model_class: str  # registry name of the model class
    config: dict[str, Any]  # the model config as saved
    data_spec: dict[str, Any] | None  # spec that rebuilds the training data, if any
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. {"test_accuracy": 1.0}
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch training record
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the writer stored
    mechscope_version: str = ""

    def data(self) -> Any:
        """Rebuild the training/test data from `data_spec` (a DataBundle)."""
        if self.data_spec is None:
            raise CheckpointError(f"Checkpoint {str(self.path)!r} records no data spec; pass data explicitly.")
        from mechscope.data import load_data

        return load_data(self.data_spec)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    data_spec: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to the folder `path` (model.safetensors + checkpoint.json), atomically.

    The folder is assembled under a temporary name beside `path` and renamed into place,
    so a crash never leaves half a checkpoint; an existing checkpoint is replaced whole and
    kept until the new one is in place. Anything else at `path` is never replaced.

    Raises:
        CheckpointError: the model class is not registered or a value is not JSON-serialisable.
        OutputError: `path` holds something that is not a mechscope checkpoint (checked
            before any work), or the file system refused.
    """
    target = check_checkpoint_out(path)
    try:
        name, config = model_spec(model)
    except UnsupportedModelError as err:
        raise CheckpointError(f"Cannot save {type(model).__name__}: {err}") from err
    meta = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "mechscope_version": __version__,
        "model_class": name,
        "config": config,
        "data_spec": data_spec,
        "metrics": metrics or {},
        "history": history or [],
        "extra": extra or {},
    }
    try:
        json.dumps(meta)
    except TypeError as err:
        raise CheckpointError(f"Checkpoint metadata must be JSON-serialisable: {err}") from err
    with writing_folder(target, owned=is_checkpoint, what="a mechscope checkpoint") as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        meta["weights_sha256"] = _sha256(tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=True))  # written last: the marker
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Rebuild the model saved at `path`; nothing in the files is executed.

    Raises:
        CheckpointError: the folder or a file is missing, corrupt, truncated, or the weights
            do not match the recorded model configuration. The message names the file.
    """
    root = Path(path)
    recover(root, owned=is_checkpoint)  # puts back a checkpoint whose replacement was interrupted
    meta_path, weights_path = root / META_FILE, root / WEIGHTS_FILE
    if not root.is_dir():
        hint = " (a checkpoint is a folder holding checkpoint.json and model.safetensors)"
        raise CheckpointError(f"No checkpoint folder at {str(root)!r}{hint}; train one with `mechscope train`.")
    for file in (meta_path, weights_path):
        if not file.is_file():
            raise CheckpointError(f"Checkpoint {str(root)!r} is incomplete: {file.name} is missing.")
    meta = _read_meta(meta_path)
    try:
        model = build_model(meta["model_class"], meta["config"])
    except ConfigError as err:
        raise CheckpointError(f"{str(meta_path)!r} describes a model that cannot be built: {err}") from err
    _check_header(model, weights_path)  # cheap: before the whole file is hashed or read
    if meta.get("weights_sha256") and meta["weights_sha256"] != _sha256(weights_path):
        raise CheckpointError(
            f"{str(weights_path)!r} does not match the checksum in {META_FILE}: the file is corrupt or was replaced."
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    _check_state(model, state, weights_path)
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(
        path=root,
        model=model,
        model_class=meta["model_class"],
        config=meta["config"],
        data_spec=meta["data_spec"],
        metrics=meta["metrics"],
        history=meta["history"],
        extra=meta["extra"],
        mechscope_version=meta["mechscope_version"],
    )


def is_checkpoint(path: Path) -> bool:
    """True when the folder `path` holds a mechscope checkpoint (by its checkpoint.json marker)."""
    meta = Path(path) / META_FILE
    try:
        if not meta.is_file() or meta.stat().st_size > _MAX_META_BYTES:
            return False
        with open(meta, "rb") as handle:
            return _FORMAT.encode() in handle.read(4096)
    except OSError:
        return False


def check_checkpoint_out(path: str | os.PathLike[str]) -> Path:
    """Check before any work that a checkpoint may be written at `path`; return it resolved.

    Raises:
        OutputError: `path` holds something that is not a mechscope checkpoint, or is unwritable.
    """
    return check_output(path, owned=is_checkpoint, what="a mechscope checkpoint")


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """Read and validate checkpoint.json: every entry has the type the loader relies on."""
    where = repr(str(meta_path))
    if meta_path.stat().st_size > _MAX_META_BYTES:
        raise CheckpointError(f"{where} is larger than {_MAX_META_BYTES >> 20} MB; it is not a checkpoint description.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{where} is not valid JSON ({err}); the checkpoint is corrupt.") from err
    except RecursionError as err:
        raise CheckpointError(f"{where} is nested too deeply to be a checkpoint description; it is corrupt.") from err
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CheckpointError(f"{where} is not a mechscope checkpoint description (no format marker).")
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}: format_version must be a positive integer, got {version!r}; it is corrupt.")
    if version > _FORMAT_VERSION:
        raise CheckpointError(
            f"{where} uses checkpoint format {version}, newer than this mechscope ({__version__}) reads; "
            "upgrade mechscope."
        )
    for key in ("model_class", "config"):
        if key not in meta:
            raise CheckpointError(f"{where} lacks the {key!r} entry; the checkpoint is corrupt.")
    expected: dict[str, tuple[type, ...]] = {
        "model_class": (str,), "config": (dict,), "data_spec": (dict, type(None)), "metrics": (dict,),
        "history": (list,), "extra": (dict,), "mechscope_version": (str,), "weights_sha256": (str, type(None)),
    }
    defaults: dict[str, Any] = {"data_spec": None, "metrics": {}, "history": [], "extra": {},
                                "mechscope_version": "", "weights_sha256": None}
    meta = {**defaults, **meta}
    for key, types_ in expected.items():
        if not isinstance(meta[key], types_):
            allowed = " or ".join("null" if t is type(None) else _JSON_NAMES.get(t, t.__name__) for t in types_)
            raise CheckpointError(
                f"{where}: {key!r} must be {allowed}, got {_json_name(meta[key])}; the checkpoint is corrupt."
            )
    if not all(isinstance(row, dict) for row in meta["history"]):
        raise CheckpointError(f"{where}: 'history' must be a list of objects (one per epoch); the checkpoint is corrupt.")
    return meta


def _json_name(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


_JSON_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer", float: "a number",
               bool: "a boolean"}


def _check_header(model: nn.Module, weights_path: Path) -> None:
    """Check the safetensors header against the file size and the model, reading only the header."""
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
    expected = model.state_dict()
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
    wrong = [f"{k}: file {shapes.get(k)} vs model {list(v.shape)}" for k, v in expected.items()
             if k in shapes and shapes[k] != list(v.shape)]
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if wrong or missing or unexpected:
        problems = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                    "shape mismatch " + "; ".join(wrong[:5]) if wrong else ""]
        raise CheckpointError(
            f"{where} does not match the model described in {META_FILE}: " + ", ".join(p for p in problems if p)
        )


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], weights_path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {missing[:5]}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:5]}")
    if wrong:
        problems.append("shape mismatch " + "; ".join(wrong[:5]))
    if problems:
        raise CheckpointError(
            f"{str(weights_path)!r} does not match the model described in {META_FILE}: " + ", ".join(problems)
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

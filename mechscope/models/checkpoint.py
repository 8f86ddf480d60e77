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
    if meta.get("weights_sha256") and meta["weights_sha256"] != _sha256(weights_path):
        raise CheckpointError(
            f"{str(weights_path)!r} does not match the checksum in {META_FILE}: the file is corrupt or was replaced."
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    try:
        model = build_model(meta["model_class"], meta["config"])
    except ConfigError as err:
        raise CheckpointError(f"{str(meta_path)!r} describes a model that cannot be built: {err}") from err
    _check_state(model, state, weights_path)
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(
        path=root,
        model=model,
        model_class=meta["model_class"],
        config=meta["config"],
        data_spec=meta.get("data_spec"),
        metrics=meta.get("metrics") or {},
        history=meta.get("history") or [],
        extra=meta.get("extra") or {},
        mechscope_version=str(meta.get("mechscope_version", "")),
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
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{str(meta_path)!r} is not valid JSON ({err}); the checkpoint is corrupt.") from err
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CheckpointError(f"{str(meta_path)!r} is not a mechscope checkpoint description (no format marker).")
    if meta.get("format_version", 0) > _FORMAT_VERSION:
        raise CheckpointError(
            f"{str(meta_path)!r} uses checkpoint format {meta.get('format_version')}, newer than this mechscope "
            f"({__version__}) reads; upgrade mechscope."
        )
    for key in ("model_class", "config"):
        if key not in meta:
            raise CheckpointError(f"{str(meta_path)!r} lacks the {key!r} entry; the checkpoint is corrupt.")
    return meta


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

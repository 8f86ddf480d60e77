"""Checkpoints: safetensors weights plus a JSON description, written atomically, never pickled."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mechscope._version import __version__
from mechscope.atomic import check_output, recover, writing_folder
from mechscope.errors import CheckpointError, ConfigError, UnsupportedModelError, UntrustedCodeError
from mechscope.models.factory import TRUST_ENV, ModelFactory, code_trusted, import_module
from mechscope.models.registry import MODEL_REGISTRY, build_model, model_spec
from mechscope.models.weights import check_header, check_state

if TYPE_CHECKING:
    from mechscope.data import DataBundle

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
    factory: ModelFactory | None = None  # the user code that builds the model, for imported models
    loaded_data: DataBundle | None = field(default=None, repr=False, compare=False)  # see `with_data`

    def data(self) -> DataBundle:
        """The model's data: the bundle given to `with_data`, else rebuilt from `data_spec`.

        Raises:
            CheckpointError: the checkpoint records no data (pass some, e.g. `--data npz:FILE`).
        """
        if self.loaded_data is not None:
            return self.loaded_data
        if self.data_spec is None:
            raise CheckpointError(
                f"Checkpoint {str(self.path)!r} records no data; pass some (--data images:DIR|npz:FILE|"
                "safetensors:FILE on the command line, data=... in Python)."
            )
        from mechscope.data import load_data

        return load_data(self.data_spec)

    def with_data(self, bundle: DataBundle) -> Checkpoint:
        """A copy that analyses `bundle` instead of the recorded data."""
        return replace(self, data_spec=dict(bundle.spec), loaded_data=bundle)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    data_spec: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    factory: ModelFactory | None = None,
) -> Path:
    """Write `model` to the folder `path` (model.safetensors + checkpoint.json), atomically.

    The model is recorded either by its registered class and config (`register_model`) or,
    given `factory`, by the user code that builds it (loading it then needs `trust_code`).
    A registered class defined outside mechscope also records its module, which loading
    imports (with `trust_code`) so that the class is registered again.

    The folder is assembled under a temporary name beside `path` and renamed into place,
    so a crash never leaves half a checkpoint; an existing checkpoint is replaced whole and
    kept until the new one is in place. Anything else at `path` is never replaced.

    Raises:
        CheckpointError: the model class is not registered (and no factory is given) or a value
            is not JSON-serialisable.
        OutputError: `path` holds something that is not a mechscope checkpoint (checked
            before any work), or the file system refused.
    """
    target = check_checkpoint_out(path)
    code: dict[str, Any] = {}
    config: dict[str, Any]
    if factory is not None:
        name, config = type(model).__name__, {}
        code["factory"] = factory.as_dict()
    else:
        try:
            name, config = model_spec(model)
        except UnsupportedModelError as err:
            raise CheckpointError(
                f"Cannot save {type(model).__name__}: {err} Or pass factory=ModelFactory(...) "
                "(`mechscope import-model`)."
            ) from err
        module = type(model).__module__
        if not module.startswith("mechscope.") and module != "__main__":
            code["module"] = module
    meta = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "mechscope_version": __version__,
        "model_class": name,
        "config": config,
        **code,
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
        # a copy per name: tied weights (e.g. GPT-2's embedding and unembedding) share storage,
        # which safetensors refuses to save
        state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        meta["weights_sha256"] = _sha256(tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=True))  # written last: the marker
    return target


def load_checkpoint(path: str | os.PathLike[str], *, trust_code: bool | None = None) -> Checkpoint:
    """Rebuild the model saved at `path` on the CPU; nothing in the files is executed.

    Args:
        path: The checkpoint folder.
        trust_code: Allow importing the user code an imported model records (its factory or
            module); default: the environment variable `MECHSCOPE_TRUST_CODE=1`.

    Raises:
        CheckpointError: the folder or a file is missing, corrupt, truncated, or the weights
            do not match the recorded model configuration. The message names the file.
        UntrustedCodeError: the model is built by user code and `trust_code` is not given; the
            message names the code.
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
    model, factory = _build(meta, meta_path, trust_code)
    check_header(model, weights_path)  # cheap: before the whole file is hashed or read
    if meta.get("weights_sha256") and meta["weights_sha256"] != _sha256(weights_path):
        raise CheckpointError(
            f"{str(weights_path)!r} does not match the checksum in {META_FILE}: the file is corrupt or was replaced."
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    check_state(model, state, weights_path)
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
        factory=factory,
    )


def _build(meta: dict[str, Any], meta_path: Path, trust_code: bool | None) -> tuple[nn.Module, ModelFactory | None]:
    """The model checkpoint.json describes, with fresh weights; user code is imported only when trusted."""
    where = repr(str(meta_path))
    if meta.get("factory") is not None:
        try:
            record = meta["factory"]
            factory = ModelFactory(record["source"], record["name"], record.get("args", {}))
        except (KeyError, TypeError, ConfigError) as err:
            raise CheckpointError(f"{where}: the 'factory' entry is not a valid model factory ({err}).") from err
        if not code_trusted(trust_code):
            raise UntrustedCodeError(
                f"{str(meta_path.parent)!r} is built by user code ({factory.describe()}); loading it imports and "
                f"runs that code: pass --trust-code or set {TRUST_ENV}=1 (trust_code=True in Python) if you trust it."
            )
        recorded = meta["factory"].get("sha256")
        if recorded and factory.is_file and factory.as_dict().get("sha256") not in (None, recorded):
            warnings.warn(f"{factory.source} changed since {str(meta_path.parent)!r} was written; the weights are "
                          "loaded into the model its current code builds.", RuntimeWarning, stacklevel=3)
        try:
            return factory.build(trust_code=True), factory
        except ConfigError as err:
            raise CheckpointError(f"{where} describes a model that cannot be built: {err}") from err
    module = meta.get("module")
    if meta["model_class"] not in MODEL_REGISTRY and module is not None:
        if not code_trusted(trust_code):
            raise UntrustedCodeError(
                f"{str(meta_path.parent)!r} holds a {meta['model_class']} registered by the module {module!r}; "
                f"loading it imports that module: pass --trust-code or set {TRUST_ENV}=1 (trust_code=True in "
                "Python) if you trust it."
            )
        try:
            import_module(module)
        except ConfigError as err:
            raise CheckpointError(f"{where}: {err}") from err
    try:
        return build_model(meta["model_class"], meta["config"]), None
    except ConfigError as err:
        raise CheckpointError(f"{where} describes a model that cannot be built: {err}") from err


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
        "factory": (dict, type(None)), "module": (str, type(None)),
    }
    defaults: dict[str, Any] = {"data_spec": None, "metrics": {}, "history": [], "extra": {},
                                "mechscope_version": "", "weights_sha256": None, "factory": None, "module": None}
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

"""Results of finished tasks kept on disk, addressed by what they were computed from.

A long job (a report, a sweep) is cut into tasks (`mechscope.engine`). With a `TaskCache`,
each task's result is written the moment it finishes, under a key that hashes everything it
depends on: the cache's scope (the model's weights, the data, the settings: `fingerprint`),
the task function (its name and the source of its module) and the task's own item. A run that
was killed therefore resumes where it stopped, and a finished task is never computed again;
change any input and the key changes with it.

Results are stored without pickle: the structure as JSON, tensors and arrays in one
safetensors file beside it. Stored values may be None, bools, numbers, strings, paths, lists,
tuples, dicts, tensors, numpy arrays, and dataclasses or enums defined in mechscope (rebuilt
field by field, so loading never runs code from the file).

Example:
    >>> cache = TaskCache("~/.cache/mechscope/tasks").scoped(model, data.x_test, settings)
    >>> with open_engine(workers=2) as engine:
    ...     parts = engine.map(score_shard, shards, shared=model, cache=cache)   # again: all hits
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mechscope.atomic import os_error, write_file
from mechscope.errors import ConfigError

__all__ = ["TaskCache", "fingerprint", "default_cache_folder"]

_FORMAT = "mechscope-task/1"
_OWN_MODULES = "mechscope."  # dataclasses and enums that may be rebuilt from a stored result


def default_cache_folder() -> Path:
    """`$MECHSCOPE_CACHE`, else `$XDG_CACHE_HOME/mechscope/tasks`, else `~/.cache/mechscope/tasks`."""
    if os.environ.get("MECHSCOPE_CACHE"):
        return Path(os.environ["MECHSCOPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mechscope" / "tasks"


def fingerprint(*values: Any) -> str:
    """A hex digest of `values`: tensors by dtype, shape and bytes, modules by class and state dict.

    Also hashes None, bools, numbers, strings, paths, sequences, mappings, dataclasses, enums,
    numpy arrays, functions (by module and name) and any object with a `__fingerprint__()`
    method (by what it returns). Equal inputs give equal digests in any process.

    Raises:
        ConfigError: a value of another type (its digest would not be stable across processes).
    """
    digest = hashlib.blake2b(digest_size=20)
    for value in values:
        _feed(digest, value)
    return digest.hexdigest()


class TaskCache:
    """A folder of finished tasks' results, keyed by scope, task function and item.

    `hits` and `misses` count the lookups since the cache was made (shared with `scoped` copies).
    """

    def __init__(self, folder: str | os.PathLike[str], *, scope: str = "") -> None:
        self.folder = Path(folder).expanduser()
        self.scope = scope
        self._counts = {"hits": 0, "misses": 0}

    @property
    def hits(self) -> int:
        """Lookups that found a stored result."""
        return self._counts["hits"]

    @property
    def misses(self) -> int:
        """Lookups that found none (the task ran)."""
        return self._counts["misses"]

    def scoped(self, *values: Any) -> TaskCache:
        """The same folder with keys that also depend on `values` (model, data, settings)."""
        child = TaskCache(self.folder, scope=fingerprint(self.scope, *values))
        child._counts = self._counts
        return child

    def key(self, fn: Callable[..., Any], item: Any) -> str:
        """The key of running `fn` on `item` in this scope; it changes when `fn`'s module source does."""
        return fingerprint(self.scope, _code_of(fn), item)

    def load(self, key: str) -> tuple[bool, Any]:
        """(True, result) when `key` is stored, else (False, None). A damaged entry counts as missing."""
        meta, blob = self._paths(key)
        try:
            with open(meta, encoding="utf-8") as handle:
                stored = json.load(handle)
            tensors = _read_tensors(blob) if stored.get("tensors") else {}
            if stored.get("format") != _FORMAT:
                raise ValueError("not a task result")
            value = _decode(stored["value"], tensors)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
            self._counts["misses"] += 1
            return False, None
        self._counts["hits"] += 1
        return True, value

    def store(self, key: str, value: Any) -> None:
        """Write `value` under `key`: tensors first, then the JSON that marks the entry complete.

        Raises:
            ConfigError: `value` holds a type that cannot be stored without pickle.
            OutputError: the folder cannot be written.
        """
        tensors: dict[str, Tensor] = {}
        encoded = _encode(value, tensors)
        meta, blob = self._paths(key)
        if tensors:
            from safetensors.torch import save_file

            write_file(blob, lambda tmp: save_file(tensors, str(tmp)), owned=_ours, what="a task result")
        text = json.dumps({"format": _FORMAT, "tensors": bool(tensors), "value": encoded})
        write_file(meta, lambda tmp: tmp.write_text(text, encoding="utf-8"), owned=_ours, what="a task result")

    def __len__(self) -> int:
        """Stored results in the whole folder."""
        with os_error(self.folder, "read the task cache"):
            return sum(1 for _ in self.folder.glob("*/*.json")) if self.folder.is_dir() else 0

    def _paths(self, key: str) -> tuple[Path, Path]:
        where = self.folder / key[:2]
        return where / f"{key}.json", where / f"{key}.safetensors"

    def __repr__(self) -> str:
        return f"TaskCache({str(self.folder)!r}, hits={self.hits}, misses={self.misses})"


def _ours(path: Path) -> bool:
    """A file of the task cache: a 40-hex-digit name with our suffixes."""
    stem = path.name.split(".")[0]
    return len(stem) == 40 and all(c in "0123456789abcdef" for c in stem) and path.suffix in (".json", ".safetensors")


def _read_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error type for a damaged file
        raise ValueError(str(err)) from err


_CODE: dict[str, str] = {}


def _code_of(fn: Callable[..., Any]) -> str:
    """`module:qualname` of `fn` with a digest of its module's source (so edited code misses the cache)."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or repr(fn)
    if module not in _CODE:
        try:
            source = inspect.getsource(sys.modules[module])
        except (KeyError, OSError, TypeError):
            source = ""
        _CODE[module] = hashlib.blake2b(source.encode(), digest_size=12).hexdigest()
    return f"{module}:{name}:{_CODE[module]}"


def _feed(digest: Any, value: Any) -> None:
    """Hash `value` into `digest`, tagged by kind so different structures never collide."""
    if value is None or isinstance(value, (bool, int, str)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, float):
        digest.update(f"float:{value.hex() if math.isfinite(value) else value!r};".encode())
    elif isinstance(value, Tensor):
        _feed_tensor(digest, value)
    elif hasattr(value, "__fingerprint__") and not isinstance(value, type):
        digest.update(f"object:{type(value).__module__}.{type(value).__qualname__}(".encode())
        _feed(digest, value.__fingerprint__())
        digest.update(b")")
    elif isinstance(value, np.ndarray):
        _feed_tensor(digest, torch.from_numpy(np.ascontiguousarray(value)))
    elif isinstance(value, nn.Module):
        digest.update(f"module:{type(value).__module__}.{type(value).__qualname__};".encode())
        _feed(digest, dict(value.state_dict()))
    elif isinstance(value, enum.Enum):
        digest.update(f"enum:{type(value).__qualname__}.{value.name};".encode())
    elif isinstance(value, os.PathLike):
        digest.update(f"path:{os.fspath(value)};".encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"dataclass:{type(value).__module__}.{type(value).__qualname__}(".encode())
        for f in dataclasses.fields(value):
            digest.update(f"{f.name}=".encode())
            _feed(digest, getattr(value, f.name))
        digest.update(b")")
    elif isinstance(value, Mapping):
        digest.update(f"map{len(value)}(".encode())
        for k, v in value.items():
            _feed(digest, k)
            _feed(digest, v)
        digest.update(b")")
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}(".encode())
        for v in value:
            _feed(digest, v)
        digest.update(b")")
    elif inspect.isfunction(value) or inspect.isbuiltin(value) or isinstance(value, type):
        digest.update(f"code:{_code_of(value)};".encode())
    else:
        raise ConfigError(f"cannot fingerprint a {type(value).__name__} for the task cache; pass tensors, numbers, "
                          "strings, dataclasses or modules.")


def _feed_tensor(digest: Any, value: Tensor) -> None:
    flat = value.detach().to("cpu").contiguous().reshape(-1)
    digest.update(f"tensor:{flat.dtype}:{tuple(value.shape)};".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def _encode(value: Any, tensors: dict[str, Tensor]) -> Any:
    """JSON form of `value` with tensors moved into `tensors` (see the module docstring for the types)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().to("cpu").contiguous().clone()
        return {"tensor": name}
    if isinstance(value, np.ndarray):
        return {"array": _encode(torch.from_numpy(np.ascontiguousarray(value)), tensors)}
    if isinstance(value, enum.Enum):
        return {"enum": _type_name(type(value)), "name": value.name}
    if isinstance(value, os.PathLike):
        return {"path": os.fspath(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}
        return {"dataclass": _type_name(type(value)), "fields": fields}
    if isinstance(value, (list, tuple)):
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v, tensors) for v in value]}
    if isinstance(value, Mapping):
        return {"dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise ConfigError(f"a task result of type {type(value).__name__} cannot be stored without pickle; return "
                      "tensors, numbers, strings, lists, dicts or mechscope dataclasses.")


def _type_name(cls: type) -> str:
    if not cls.__module__.startswith(_OWN_MODULES):
        raise ConfigError(f"only mechscope's own dataclasses and enums are stored in the task cache, not "
                          f"{cls.__module__}.{cls.__qualname__}.")
    return f"{cls.__module__}:{cls.__qualname__}"


def _decode(stored: Any, tensors: Mapping[str, Tensor]) -> Any:
    if stored is None or isinstance(stored, (bool, int, float, str)):
        return stored
    if "tensor" in stored:
        return tensors[stored["tensor"]]
    if "float" in stored:
        return float(stored["float"])
    if "array" in stored:
        return _decode(stored["array"], tensors).numpy()
    if "path" in stored:
        return Path(stored["path"])
    if "list" in stored:
        return [_decode(v, tensors) for v in stored["list"]]
    if "tuple" in stored:
        return tuple(_decode(v, tensors) for v in stored["tuple"])
    if "dict" in stored:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in stored["dict"]}
    if "enum" in stored:
        return _own_type(stored["enum"])[stored["name"]]
    cls = _own_type(stored["dataclass"])
    obj = object.__new__(cls)
    for name, field_value in stored["fields"].items():
        object.__setattr__(obj, name, _decode(field_value, tensors))
    return obj


def _own_type(name: str) -> Any:
    """The mechscope class `module:qualname` (never one from elsewhere: loading runs no foreign code)."""
    module, _, qualname = name.partition(":")
    if not module.startswith(_OWN_MODULES):
        raise ValueError(f"not a mechscope type: {name}")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not isinstance(cls, type) or not (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum)):
        raise ValueError(f"not a dataclass or enum: {name}")
    return cls

"""Models built by user code: `MODULE_OR_FILE:FACTORY` plus keyword arguments, imported only when trusted.

A factory is a function or class in a Python module (`mypkg.nets:make_resnet`) or file
(`models/net.py:Net`) that returns an `nn.Module`. Importing it runs that code, so it
happens only when the caller says so: `trust_code=True` (`--trust-code` on the command
line) or the environment variable `MECHSCOPE_TRUST_CODE=1`. A checkpoint written by
`mechscope import-model` records its factory by import path; loading it imports nothing
without that permission, and the refusal names what would be imported.

Example:
    >>> factory = ModelFactory.parse("models/net.py:Net", {"width": 64})
    >>> model = factory.build(trust_code=True)
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from mechscope.errors import ConfigError, UntrustedCodeError

__all__ = ["TRUST_ENV", "ModelFactory", "code_trusted", "parse_model_args", "import_module"]

TRUST_ENV = "MECHSCOPE_TRUST_CODE"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def code_trusted(trust_code: bool | None = None) -> bool:
    """True when user code may be imported: `trust_code` if given, else `MECHSCOPE_TRUST_CODE=1`."""
    return bool(trust_code) if trust_code is not None else os.environ.get(TRUST_ENV) == "1"


@dataclass(frozen=True)
class ModelFactory:
    """Where a model's code lives and how to call it.

    Attributes:
        source: A dotted module path (`mypkg.nets`) or the path of a `.py` file (absolute once resolved).
        name: The function or class in it, possibly dotted (`Net`, `zoo.make_resnet`).
        args: Keyword arguments of the call (JSON values).
    """

    source: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError(f"a model factory needs a module or .py file, got {self.source!r}.")
        if not isinstance(self.name, str) or not _DOTTED.fullmatch(self.name):
            raise ConfigError(f"a model factory's name must be a Python name such as make_model, got {self.name!r}.")
        if not isinstance(self.args, Mapping) or not all(isinstance(k, str) for k in self.args):
            raise ConfigError(f"model factory arguments must be a dict of keyword arguments, got {self.args!r}.")
        try:
            json.dumps(dict(self.args), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"model factory arguments must be JSON values (numbers, strings, lists): {err}") from err

    @classmethod
    def parse(cls, text: str, args: Mapping[str, Any] | None = None) -> ModelFactory:
        """Read `MODULE_OR_FILE:FACTORY` (e.g. `pkg.nets:make_resnet`, `net.py:Net`); a file path is made absolute.

        Raises:
            ConfigError: the text lacks `:FACTORY`, or the module part is neither a `.py` file nor a dotted name.
        """
        source, colon, name = str(text).rpartition(":")
        if not colon or not source or not name:
            raise ConfigError(
                f"model {text!r} must be MODULE_OR_FILE:FACTORY, e.g. mypkg.nets:make_resnet or models/net.py:Net."
            )
        if _is_file(source):
            return cls(str(Path(source).expanduser().resolve()), name, dict(args or {}))
        if not _DOTTED.fullmatch(source):
            raise ConfigError(f"model {text!r}: {source!r} is neither a .py file nor a dotted module name.")
        return cls(source, name, dict(args or {}))

    @property
    def is_file(self) -> bool:
        """True when `source` is a `.py` file rather than an importable module."""
        return _is_file(self.source)

    def describe(self) -> str:
        """`name(arg=value, ...)` from `source`, as the messages quote it."""
        call = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({call}) from {self.source}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form a checkpoint stores (`ModelFactory(**d)` reads it back)."""
        record: dict[str, Any] = {"source": self.source, "name": self.name, "args": dict(self.args)}
        if self.is_file and Path(self.source).is_file():
            record["sha256"] = hashlib.sha256(Path(self.source).read_bytes()).hexdigest()
        return record

    def build(self, *, trust_code: bool | None = None, seed: int | None = 0) -> nn.Module:
        """Import the code and call the factory; the new model's initial weights are drawn under `seed`.

        Args:
            trust_code: Allow importing the code (default: `MECHSCOPE_TRUST_CODE=1`).
            seed: Seed of the initial weights (the global RNG is restored afterwards); None draws
                from the global RNG.

        Raises:
            UntrustedCodeError: the code is not trusted (a ConfigError).
            ConfigError: the code cannot be imported, has no such factory, the call
                fails (its error quoted), or it returns something other than an nn.Module.
        """
        if not code_trusted(trust_code):
            raise UntrustedCodeError(
                f"building the model imports and runs user code ({self.describe()}); allow it with --trust-code "
                f"or {TRUST_ENV}=1 (trust_code=True in Python) if you trust that code."
            )
        with _on_path([_folder(self.source)]):  # the code may import its siblings while it runs, too
            return self._call(import_module(self.source), seed)

    def _call(self, module: ModuleType, seed: int | None) -> nn.Module:
        try:
            factory = functools.reduce(getattr, self.name.split("."), module)
        except AttributeError:
            names = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise ConfigError(
                f"{self.source} has no {self.name!r}; callables defined there: {', '.join(names[:12]) or 'none'}."
            ) from None
        if not callable(factory):
            raise ConfigError(f"{self.name} in {self.source} is a {type(factory).__name__}, not a function or class.")
        try:
            if seed is None:
                model = factory(**self.args)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model = factory(**self.args)
        except Exception as err:  # noqa: BLE001 - user code: its error becomes one line naming the call
            raise ConfigError(f"calling {self.describe()} failed: {type(err).__name__}: {_first_line(err)}") from err
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{self.describe()} returned a {type(model).__name__}, not a torch.nn.Module.")
        return model


def import_module(source: str) -> ModuleType:
    """Import a dotted module (the working directory first on the path) or a `.py` file (its folder on the path).

    Raises:
        ConfigError: the file is missing, or importing raised (the error quoted in one line).
    """
    if _is_file(source):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"no Python file at {source!r}; pass an existing FILE.py:FACTORY.")
        name = f"mechscope_user_{_safe(path.stem)}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{source!r} cannot be imported as a Python module.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and typing look their module up while it runs
        try:
            with _on_path([_folder(source)]):
                spec.loader.exec_module(module)
        except BaseException as err:
            del sys.modules[name]
            if isinstance(err, KeyboardInterrupt):
                raise
            raise ConfigError(f"importing {source!r} failed: {type(err).__name__}: {_first_line(err)}") from err
        return module
    try:
        with _on_path([_folder(source)]):
            return importlib.import_module(source)
    except Exception as err:  # noqa: BLE001 - user code
        hint = " (run from the folder that holds it, or install it)" if isinstance(err, ModuleNotFoundError) else ""
        raise ConfigError(f"importing module {source!r} failed{hint}: {type(err).__name__}: {_first_line(err)}") from err


def parse_model_args(items: Iterable[str]) -> dict[str, Any]:
    """Turn `key=value` strings into keyword arguments; a value is read as JSON when it parses, else kept as text.

    `width=64` -> 64, `dims=[8,16]` -> [8, 16], `act=relu` -> "relu", `bias=true` -> True.

    Raises:
        ConfigError: an item has no `=`, an empty or non-identifier key, or a key given twice.
    """
    args: dict[str, Any] = {}
    for item in items:
        key, eq, text = str(item).partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise ConfigError(f"model argument {item!r} must be KEY=VALUE with a Python name as KEY, e.g. width=64.")
        if key in args:
            raise ConfigError(f"model argument {key!r} is given twice.")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"model argument {key}={text} is not a finite number.")
        args[key] = value
    return args


class _on_path:
    """Put folders first on sys.path for the block (imports of sibling modules), then restore it."""

    def __init__(self, folders: list[str]) -> None:
        self.folders = folders
        self.saved: list[str] = []

    def __enter__(self) -> None:
        self.saved = list(sys.path)
        sys.path[:0] = [f for f in self.folders if f not in sys.path]

    def __exit__(self, *exc: object) -> None:
        sys.path[:] = self.saved


def _is_file(source: str) -> bool:
    return source.endswith(".py") or os.sep in source or "/" in source


def _folder(source: str) -> str:
    """The folder whose modules the code imports: a file's own folder, else the working directory."""
    return str(Path(source).parent) if _is_file(source) else os.getcwd()


def _safe(text: str) -> str:
    return re.sub(r"\W", "_", text)[:40]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "(no message)"

"""mechscope: train or load a network, record what happens inside it, and explain it.

The names here are the ones most scripts need: `load_data` and `DataBundle`; `train` and
`TrainConfig`; `Checkpoint`, `save_checkpoint` and `load_checkpoint`; `record`, `patch`,
`ActivationStore`, `layer_names` and `describe_layers`; and `MechscopeError`, the root of every
error mechscope raises. (The `capture` context manager is `mechscope.capture.capture`: at the top
level `mechscope.capture` is the subpackage.) Each analysis is a subpackage with its own short list of names
(`mechscope.probes`, `mechscope.symbolic`, `mechscope.featurevis`, `mechscope.attribution`,
`mechscope.circuits`, `mechscope.fourier`); the models are in `mechscope.models`, figures in
`mechscope.plots` and the report in `mechscope.report`.

The names load on first use, so `import mechscope` (and the command line's `--help`) does not
import PyTorch until something needs it.
"""

from __future__ import annotations

import importlib
import typing

from mechscope._version import __version__

if typing.TYPE_CHECKING:
    from mechscope.capture import ActivationStore, describe_layers, layer_names, patch, record
    from mechscope.data import DataBundle, load_data
    from mechscope.errors import MechscopeError
    from mechscope.models import TrainConfig, train
    from mechscope.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

_HOMES = {
    "mechscope.capture": ["ActivationStore", "describe_layers", "layer_names", "patch", "record"],
    "mechscope.data": ["DataBundle", "load_data"],
    "mechscope.errors": ["MechscopeError"],
    "mechscope.models": ["TrainConfig", "train"],
    "mechscope.models.checkpoint": ["Checkpoint", "load_checkpoint", "save_checkpoint"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["__version__", *sorted(_HOME_OF)]


def __getattr__(name: str) -> typing.Any:
    """Import the module that defines `name` the first time it is asked for."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mechscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME_OF))

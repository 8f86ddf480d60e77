"""mechscope: train or load a network, record what happens inside it, and explain it.

The names below load on first use, so `import mechscope` (and the command line's `--help`)
does not import PyTorch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mechscope._version import __version__

if TYPE_CHECKING:
    from mechscope.capture import ActivationStore, capture, describe_layers, get_layer, layer_names, patch, record
    from mechscope.data import DataBundle, digits_data, function_data, load_data, modular_data
    from mechscope.errors import MechscopeError
    from mechscope.models import DigitCNN, ModularMLP, TinyReLU, TrainConfig, evaluate, train
    from mechscope.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

_HOMES = {
    "mechscope.capture": ["ActivationStore", "capture", "describe_layers", "get_layer", "layer_names", "patch",
                          "record"],
    "mechscope.data": ["DataBundle", "digits_data", "function_data", "load_data", "modular_data"],
    "mechscope.errors": ["MechscopeError"],
    "mechscope.models": ["DigitCNN", "ModularMLP", "TinyReLU", "TrainConfig", "evaluate", "train"],
    "mechscope.models.checkpoint": ["Checkpoint", "load_checkpoint", "save_checkpoint"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["__version__", *sorted(_HOME_OF)]


def __getattr__(name: str) -> Any:
    """Import the module that defines `name` the first time it is asked for."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mechscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME_OF))

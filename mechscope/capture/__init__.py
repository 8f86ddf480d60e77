"""Name layers, capture their activations and gradients, and patch their outputs."""

from mechscope.capture.capture import capture
from mechscope.capture.hooks import HookFn, HookPoint, hooks, patch
from mechscope.capture.modes import eval_mode
from mechscope.capture.names import LayerSpec, get_layer, layer_names, resolve_layers
from mechscope.capture.record import record
from mechscope.capture.store import ActivationStore
from mechscope.capture.summary import LayerInfo, describe_layers

__all__ = [
    "ActivationStore",
    "HookFn",
    "HookPoint",
    "LayerInfo",
    "LayerSpec",
    "capture",
    "describe_layers",
    "eval_mode",
    "get_layer",
    "hooks",
    "layer_names",
    "patch",
    "record",
    "resolve_layers",
]

"""Name layers, capture their activations and gradients, and patch their outputs."""

from mechscope.capture.capture import capture
from mechscope.capture.hooks import HookFn, HookPoint, hooks, patch
from mechscope.capture.layers import default_layer
from mechscope.capture.modes import eval_mode, model_device
from mechscope.capture.names import LayerSpec, get_layer, layer_names, resolve_layers, split_layer
from mechscope.capture.outputs import OutputSpec, describe_output, select_output
from mechscope.capture.record import record
from mechscope.capture.store import ActivationStore
from mechscope.capture.summary import LayerInfo, describe_layers
from mechscope.capture.units import AxesSpec, LayerAxes, UnitAxes, UnitKind, layer_unit_axes, unit_axes

__all__ = [
    "ActivationStore",
    "AxesSpec",
    "HookFn",
    "HookPoint",
    "LayerAxes",
    "LayerInfo",
    "LayerSpec",
    "OutputSpec",
    "UnitAxes",
    "UnitKind",
    "capture",
    "default_layer",
    "describe_layers",
    "describe_output",
    "eval_mode",
    "get_layer",
    "hooks",
    "layer_names",
    "layer_unit_axes",
    "model_device",
    "patch",
    "record",
    "resolve_layers",
    "select_output",
    "split_layer",
    "unit_axes",
]

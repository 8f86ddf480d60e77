"""Name layers, capture their activations and gradients, and patch their outputs, on any nn.Module.

Here are the context managers (`capture`, `patch`, `hooks`), `record` and its `ActivationStore`,
layer names and summaries, the default layer, the explained output and unit axes. The rest
lives in the submodules: `names` (resolving names, `LayerSpec`), `calls` (repeated calls,
`name:k`), `outputs` (`OutputSpec`), `units` (`AxesSpec`, per-layer axes), `modes` (eval mode,
device), `hooks`, `record`, `store`, `guard` and `summary`.
"""

from mechscope.capture.capture import capture
from mechscope.capture.hooks import HookPoint, hooks, patch
from mechscope.capture.layers import default_layer
from mechscope.capture.names import get_layer, layer_names
from mechscope.capture.outputs import select_output
from mechscope.capture.record import record
from mechscope.capture.store import ActivationStore
from mechscope.capture.summary import LayerInfo, describe_layers
from mechscope.capture.units import UnitAxes, unit_axes

__all__ = [
    "ActivationStore",
    "HookPoint",
    "LayerInfo",
    "UnitAxes",
    "capture",
    "default_layer",
    "describe_layers",
    "get_layer",
    "hooks",
    "layer_names",
    "patch",
    "record",
    "select_output",
    "unit_axes",
]

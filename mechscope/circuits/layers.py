"""Find conv layers, their activation layers and receptive fields in any nn.Module.

Everything here walks `named_modules()` in registration order, which is the forward
order for `nn.Sequential` stacks and for models such as DigitCNN that register their
layers in the order they run; except `conv_feeding`, which follows the model's dataflow
(`mechscope.circuits.dataflow`), so residual blocks are read right.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mechscope.capture import get_layer
from mechscope.capture.names import split_layer
from mechscope.circuits.dataflow import layer_graph
from mechscope.data.finite import check_finite
from mechscope.errors import DataError, UnsupportedModelError

__all__ = [
    "ReceptiveField",
    "activation_after",
    "check_inputs",
    "conv_feeding",
    "conv_layers",
    "depth_layers",
    "receptive_field",
]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
# Nonlinearities applied position by position: they keep the grid and the receptive field.
_POINTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
)
# Shape-keeping layers skipped when looking for a conv's nonlinearity.
_PASS_THROUGH = (
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm2d,
)


def conv_layers(model: nn.Module) -> list[str]:
    """Names of every Conv1d/2d/3d module, in registration order."""
    return [name for name, module in model.named_modules() if name and isinstance(module, _CONV)]


def activation_after(model: nn.Module, conv_name: str) -> str:
    """The nonlinearity right after `conv_name` (e.g. "relu2" after "conv2"), else `conv_name`.

    Norm and dropout layers between the conv and its nonlinearity are skipped over.
    """
    leaves = _leaves(model)
    names = [name for name, _ in leaves]
    if conv_name not in names:
        return conv_name
    for name, module in leaves[names.index(conv_name) + 1 :]:
        if isinstance(module, _PASS_THROUGH):
            continue
        return name if isinstance(module, _POINTWISE) else conv_name
    return conv_name


def conv_feeding(model: nn.Module, layer: str, *, example: Tensor | None = None) -> str | None:
    """The conv module that produces `layer`: itself if it is a conv, else the conv whose output
    reaches `layer` through norms, activations, pooling and adds (`mechscope.circuits.dataflow`).

    When several do (a residual sum), the one that ran last; None when no conv does (a
    Linear produces it). `example` is used only when torch.fx cannot trace the model.

    Raises:
        UnsupportedModelError: the dataflow cannot be read (see `layer_graph`).
    """
    module = get_layer(model, layer)
    if isinstance(module, _CONV):
        return split_layer(model, layer)[0]
    graph = layer_graph(model, example=example)
    modules = dict(model.named_modules())
    convs = [feed.source for feed in graph.producers(layer) if isinstance(modules.get(feed.source), _CONV)]
    return convs[-1] if convs else None


def depth_layers(model: nn.Module) -> list[str]:
    """The activation layer of every conv module, shallowest first (DigitCNN: relu1, relu2, ...)."""
    names = [activation_after(model, conv) for conv in conv_layers(model)]
    if not names:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no Conv1d/2d/3d module; pass the layers to analyse explicitly "
            "(list them with mechscope.layer_names(model))."
        )
    return names


@dataclass(frozen=True)
class ReceptiveField:
    """Where activation position `i` looks in the input, per spatial axis.

    The window of position i along an axis covers input pixels
    `start + i * jump - (size - 1) / 2` ... `+ size - 1` (centre `start + i * jump`).
    """

    size: tuple[int, ...]  # window extent in input pixels, per spatial axis
    jump: tuple[int, ...]  # input pixels between neighbouring activation positions
    start: tuple[float, ...]  # input coordinate of the centre of position 0

    def window(self, position: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """First pixel and extent of the window around `position`, per axis (may leave the image)."""
        out = []
        for axis, i in enumerate(position):
            centre = self.start[axis] + i * self.jump[axis]
            first = int(round(centre - (self.size[axis] - 1) / 2))
            out.append((first, self.size[axis]))
        return tuple(out)


def receptive_field(
    model: nn.Module, layer: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
) -> ReceptiveField | None:
    """Receptive field of `layer`'s positions in the input, or None when it cannot be derived.

    Walks the leaf modules up to `layer` (convs, pools and pointwise layers only) and checks
    that the implied output size equals the layer's real one, so an unusual forward order
    or an unknown spatial module yields None rather than a wrong window.

    Args:
        model: Any module.
        layer: A layer with a spatial output (batch, channel, *spatial).
        input_shape: One input's shape (channel, *spatial).
        output_shape: One output's shape of `layer` (channel, *spatial).
    """
    spatial = list(input_shape[1:])
    n = len(spatial)
    if n == 0 or len(output_shape) != n + 1:
        return None
    size, jump, start = [1] * n, [1] * n, [0.0] * n
    reached = False
    for name, module in _leaves(model):
        inside = name == layer or name.startswith(layer + ".")
        if reached and not inside:
            break
        reached = reached or inside
        if isinstance(module, (*_POINTWISE, *_PASS_THROUGH)):
            continue
        if not isinstance(module, (*_CONV, *_POOL)):
            return None
        geometry = _geometry(module, n)
        if geometry is None:
            return None
        for a, (k, s, p, d) in enumerate(zip(*geometry)):
            start[a] += ((k - 1) * d / 2 - p) * jump[a]
            size[a] += (k - 1) * d * jump[a]
            jump[a] *= s
            spatial[a] = (spatial[a] + 2 * p - d * (k - 1) - 1) // s + 1
    if not reached or tuple(spatial) != tuple(output_shape[1:]):
        return None
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def check_inputs(inputs: Tensor, labels: Tensor | None = None, *, what: str = "inputs") -> None:
    """Raise DataError unless `inputs` is a finite non-empty batch and `labels` class indices of the same length.

    The entry points that call this run their captures with `check_finite=False`: the
    inputs are checked here, once per tensor.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() < 1 or inputs.shape[0] == 0:
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise DataError(f"{what} must be a non-empty tensor of shape (batch, ...); got {shape}.")
    check_finite(inputs, what)
    if labels is None:
        return
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise DataError(f"labels must be integer class indices of shape (batch,); got {shape}.")
    if labels.shape[0] != inputs.shape[0]:
        raise DataError(
            f"need one label per input: got {inputs.shape[0]} {what} and {labels.shape[0]} labels."
        )
    if labels.numel() and int(labels.min()) < 0:
        raise DataError(f"labels must be class indices >= 0; got minimum {int(labels.min())}.")


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules() if name and not list(module.children())]


def _geometry(module: nn.Module, n: int) -> tuple[list[int], list[int], list[int], list[int]] | None:
    def expand(value: object) -> list[int]:
        if isinstance(value, int):
            return [value] * n
        return [int(v) for v in value]  # type: ignore[attr-defined]

    kernel = expand(getattr(module, "kernel_size"))
    stride = expand(getattr(module, "stride") or getattr(module, "kernel_size"))
    dilation = expand(getattr(module, "dilation", 1))
    padding_value = getattr(module, "padding", 0)
    if isinstance(padding_value, str):  # "same" keeps the size, "valid" pads nothing
        padding = [d * (k - 1) // 2 for k, d in zip(kernel, dilation)] if padding_value == "same" else [0] * n
    else:
        padding = expand(padding_value)
    if not (len(kernel) == len(stride) == len(padding) == len(dilation) == n):
        return None
    return kernel, stride, padding, dilation

"""Trace a model into a chain of affine maps and ReLU-like activations, in float64.

A network built from Linear, ReLU, LeakyReLU, Identity, BatchNorm1d (eval), Flatten and
Dropout (eval) layers computes a continuous piecewise-linear function. `trace_chain`
runs one small batch through the model with forward hooks on every leaf module (via
`mechscope.capture.hooks`), records the order the layers fire in, checks that each
layer receives exactly the previous layer's output (so nothing happens between layers
that the chain would miss), and turns every layer into one `AffineStep` or
`ActivationStep`. Neighbouring affine layers are composed, which folds BatchNorm into
the Linear layer before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mechscope.capture import hooks
from mechscope.capture.modes import eval_mode, model_device
from mechscope.data.finite import check_finite
from mechscope.errors import DataError, UnsupportedModelError

__all__ = [
    "AffineStep",
    "ActivationStep",
    "Step",
    "PiecewiseLinearChain",
    "trace_chain",
    "check_weights",
    "NON_PIECEWISE_LINEAR",
    "SUPPORTED_LAYERS",
]

SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Identity,
    nn.BatchNorm1d,
    nn.Flatten,
    nn.Dropout,
)
"""Leaf layers a chain may contain."""

NON_PIECEWISE_LINEAR: tuple[type[nn.Module], ...] = (
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Softplus,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Tanhshrink,
    nn.Softsign,
    nn.LogSigmoid,
)
"""Smooth activations: no finite set of affine pieces describes a network that uses them."""

_LOCAL_HINT = (
    "Use mechscope.symbolic.linearize(model, points) (CLI: `mechscope formula CHECKPOINT --local`) "
    "for an explicitly local linearization at chosen points instead."
)


@dataclass(frozen=True)
class AffineStep:
    """`h -> h @ weight.T + bias`, composed from one or more neighbouring layers."""

    name: str  # the layers folded into this step, joined with "+", e.g. "fc1+bn1"
    weight: Tensor  # (unit_out, unit_in) float64
    bias: Tensor  # (unit_out,) float64


@dataclass(frozen=True)
class ActivationStep:
    """`h -> h` where h > 0, else `negative_slope * h` (ReLU has slope 0)."""

    name: str  # dotted layer name
    negative_slope: float  # 0.0 for ReLU, the slope for LeakyReLU
    width: int  # units the activation acts on


Step = AffineStep | ActivationStep


@dataclass(frozen=True)
class PiecewiseLinearChain:
    """A model written as alternating affine maps and ReLU-like activations.

    Attributes:
        steps: Affine and activation steps in forward order (no two affine steps adjacent).
        n_features: Length of one flattened input example.
        n_outputs: Length of one flattened output example.
        output_shape: Per-example shape of the model's own output (e.g. () for (batch,) outputs).
        unit_names: One "layer:index" name per activation unit, in pattern-bit order.
    """

    steps: tuple[Step, ...]
    n_features: int
    n_outputs: int
    output_shape: tuple[int, ...]
    unit_names: tuple[str, ...]

    @property
    def activations(self) -> tuple[ActivationStep, ...]:
        """The activation steps, in forward order."""
        return tuple(step for step in self.steps if isinstance(step, ActivationStep))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run flattened inputs through the chain in float64 on the CPU, where its weights are.

        Args:
            x: Inputs (batch, n_features) or (batch, ...) flattening to n_features.

        Returns:
            (outputs (batch, n_outputs) float64, pattern bits (batch, n_units) bool; True = active).
        """
        h = _flat_inputs(x, self.n_features).to("cpu", torch.float64)
        bits = []
        for step in self.steps:
            if isinstance(step, AffineStep):
                h = h @ step.weight.T + step.bias
            else:
                on = h > 0
                bits.append(on)
                h = torch.where(on, h, step.negative_slope * h)
        pattern = torch.cat(bits, dim=1) if bits else torch.zeros(h.shape[0], 0, dtype=torch.bool, device="cpu")
        return h, pattern

    def affine_maps(self, patterns: Tensor) -> tuple[Tensor, Tensor]:
        """Exact affine map of each activation pattern, composed from masked weight matrices.

        Args:
            patterns: Pattern bits (n_patterns, n_units) bool.

        Returns:
            (A (n_patterns, n_outputs, n_features), b (n_patterns, n_outputs)) in float64, such
            that the chain computes `A @ x + b` on every input with that pattern.
        """
        n = patterns.shape[0]
        a: Tensor | None = None  # None stands for the identity (no affine step yet)
        b = torch.zeros(n, self.n_features, dtype=torch.float64, device="cpu")
        first = 0
        for step in self.steps:
            if isinstance(step, AffineStep):
                a = step.weight.expand(n, -1, -1) if a is None else torch.matmul(step.weight, a)
                b = b @ step.weight.T + step.bias
            else:
                bits = patterns[:, first : first + step.width]
                first += step.width
                scale = torch.where(bits, 1.0, step.negative_slope).to(torch.float64)  # (n_patterns, unit)
                if a is None:
                    a = torch.diag_embed(scale)
                else:
                    a = a * scale[:, :, None]
                b = b * scale
        if a is None:
            a = torch.eye(self.n_features, dtype=torch.float64, device="cpu").expand(n, -1, -1)
        return a.contiguous(), b


def trace_chain(model: nn.Module, example: Tensor) -> PiecewiseLinearChain:
    """Read a model's layers, in the order its forward pass runs them, as a piecewise-linear chain.

    The model runs once on `example` in eval mode (its mode is restored afterwards).

    Args:
        model: Any nn.Module whose leaf layers are Linear, ReLU, LeakyReLU, Identity,
            BatchNorm1d, Flatten or Dropout, applied one after another.
        example: A small valid input batch (batch, ...).

    Returns:
        The PiecewiseLinearChain the model computes.

    Raises:
        UnsupportedModelError: A layer is smooth (tanh, sigmoid, softmax, ...) or of an
            unsupported type, a layer is applied to something other than the previous
            layer's output (residual connections, functional calls), or the model's
            output is not the last layer's output. The message names the layer.
        DataError: `example` is not a batch of at least one input, or it or a layer's
            weights hold NaN/inf.
    """
    if not isinstance(example, Tensor) or example.dim() < 2 or example.shape[0] == 0:
        shape = tuple(example.shape) if isinstance(example, Tensor) else type(example).__name__
        raise DataError(f"example must be an input batch of shape (batch, n_features), got {shape}.")
    check_finite(example, "example")
    leaves = {name: module for name, module in model.named_modules() if name and not any(module.children())}
    _check_types(model, leaves)
    check_weights(model)
    calls: list[tuple[str, nn.Module, Tensor, Tensor]] = []

    def make(name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if args and isinstance(args[0], Tensor) and isinstance(output, Tensor):
                calls.append((name, module, args[0].detach(), output.detach()))
            else:
                raise UnsupportedModelError(
                    f"Layer {name!r} ({type(module).__name__}) does not map one tensor to one tensor; "
                    "only plain chains of layers can be read as a formula."
                )

        return record

    example = example.to(model_device(model))
    with eval_mode(model), torch.no_grad(), hooks(model, {name: make(name) for name in leaves}):
        output = model(example)
    if not isinstance(output, Tensor):
        raise UnsupportedModelError(
            f"{type(model).__name__} returned {type(output).__name__}, not a tensor; a formula needs one output tensor."
        )
    return _build(model, example, output.detach(), calls)


def check_weights(model: nn.Module) -> None:
    """Raise DataError naming the first layer whose parameters or buffers hold NaN/inf.

    Non-finite weights make every output NaN, which would otherwise surface as a
    misleading error far from the cause (a layer "not receiving" its input, an empty
    formula). One `isfinite` per tensor.

    Raises:
        DataError: The message says the weights of that layer are not finite.
    """
    for module_name, module in model.named_modules():
        layer = module_name or type(model).__name__
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for tensor_name, value in tensors:
            check_finite(
                value.detach(),
                f"the weights of layer {layer!r} ({tensor_name})",
                fix=f"The weights of layer {layer!r} are not finite, so the network computes no formula: it "
                "diverged in training or the checkpoint is damaged. Retrain it (e.g. with a lower learning rate) "
                "or load another checkpoint",
            )


def _check_types(model: nn.Module, leaves: dict[str, nn.Module]) -> None:
    """Reject smooth or unknown layers before running anything."""
    for name, module in leaves.items():
        if isinstance(module, NON_PIECEWISE_LINEAR):
            raise UnsupportedModelError(
                f"Layer {name!r} is {type(module).__name__}, which is not piecewise linear, so "
                f"{type(model).__name__} has no exact global formula. {_LOCAL_HINT}"
            )
        if not isinstance(module, SUPPORTED_LAYERS):
            supported = ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
            raise UnsupportedModelError(
                f"Layer {name!r} is {type(module).__name__}; formulas need a chain of {supported} layers. "
                f"{_LOCAL_HINT}"
            )


def _build(
    model: nn.Module, example: Tensor, output: Tensor, calls: Sequence[tuple[str, nn.Module, Tensor, Tensor]]
) -> PiecewiseLinearChain:
    """Turn recorded layer calls into steps, checking each layer consumed the previous output."""
    batch = example.shape[0]
    current = example.detach().reshape(batch, -1)
    n_features = current.shape[1]
    steps: list[Step] = []
    for name, module, inp, out in calls:
        if inp.shape[0] != batch or not _same_values(inp.reshape(batch, -1), current):
            raise UnsupportedModelError(
                f"Layer {name!r} ({type(module).__name__}) does not receive the previous layer's output: "
                f"{type(model).__name__}.forward is not a plain chain of layers (residual connections, "
                "functional activations such as F.relu, or reused inputs cannot be read as one chain). "
                "Rewrite the model as nn.Sequential of supported layers."
            )
        if isinstance(module, (nn.Linear, nn.BatchNorm1d)) and inp.dim() != 2:
            raise UnsupportedModelError(
                f"Layer {name!r} ({type(module).__name__}) receives inputs of shape {tuple(inp.shape)}; "
                "formulas need (batch, n_features) there. Add nn.Flatten() before it."
            )
        step = _step(name, module, inp.shape[1] if inp.dim() == 2 else int(inp[0].numel()))
        if step is not None:
            steps.append(step)
        current = out.reshape(batch, -1)
    if output.shape[0] != batch or not _same_values(output.reshape(batch, -1), current):
        raise UnsupportedModelError(
            f"{type(model).__name__} does not return its last layer's output unchanged (up to reshaping); "
            "something in forward() changes it, so the layers alone do not give the formula."
        )
    merged = _merge_affine(steps, n_features)
    unit_names = tuple(
        f"{step.name}:{i}" for step in merged if isinstance(step, ActivationStep) for i in range(step.width)
    )
    return PiecewiseLinearChain(
        steps=tuple(merged),
        n_features=n_features,
        n_outputs=current.shape[1],
        output_shape=tuple(output.shape[1:]),
        unit_names=unit_names,
    )


def _step(name: str, module: nn.Module, width: int) -> Step | None:
    """One layer as a float64 step; None for layers that do nothing in eval mode."""
    if isinstance(module, nn.Linear):
        weight = module.weight.detach().to(torch.float64).cpu()
        bias = (
            module.bias.detach().to(torch.float64).cpu()
            if module.bias is not None
            else torch.zeros(weight.shape[0], dtype=torch.float64, device="cpu")
        )
        return AffineStep(name, weight, bias)
    if isinstance(module, nn.BatchNorm1d):
        if module.running_mean is None or module.running_var is None:
            raise UnsupportedModelError(
                f"Layer {name!r} is BatchNorm1d(track_running_stats=False): it normalises with each batch's "
                "own statistics, so no fixed formula exists. Train with track_running_stats=True."
            )
        scale = 1.0 / torch.sqrt(module.running_var.detach().to(torch.float64).cpu() + module.eps)
        shift = -module.running_mean.detach().to(torch.float64).cpu() * scale
        if module.weight is not None and module.bias is not None:
            gamma = module.weight.detach().to(torch.float64).cpu()
            scale, shift = scale * gamma, shift * gamma + module.bias.detach().to(torch.float64).cpu()
        return AffineStep(name, torch.diag(scale), shift)
    if isinstance(module, nn.ReLU):
        return ActivationStep(name, 0.0, width)
    if isinstance(module, nn.LeakyReLU):
        return ActivationStep(name, float(module.negative_slope), width)
    return None  # Identity, Flatten, Dropout (eval): the chain already works on flattened values


def _merge_affine(steps: list[Step], n_features: int) -> list[Step]:
    """Compose neighbouring affine steps into one (folds BatchNorm into the Linear before it)."""
    merged: list[Step] = []
    for step in steps:
        last = merged[-1] if merged else None
        if isinstance(step, AffineStep) and isinstance(last, AffineStep):
            merged[-1] = AffineStep(
                f"{last.name}+{step.name}", step.weight @ last.weight, last.bias @ step.weight.T + step.bias
            )
        else:
            merged.append(step)
    return merged


def _same_values(a: Tensor, b: Tensor) -> bool:
    """Same shape and the same values (exactly, or to float rounding when dtypes differ)."""
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and torch.equal(a, b):
        return True
    return bool(torch.allclose(a.to(torch.float64), b.to(torch.float64), rtol=1e-6, atol=1e-6))


def _flat_inputs(x: Tensor, n_features: int) -> Tensor:
    """(batch, ...) -> (batch, n_features), or DataError."""
    if x.dim() < 2 or int(x[0].numel()) != n_features:
        raise DataError(
            f"inputs must be a batch whose examples flatten to {n_features} features, got shape {tuple(x.shape)}."
        )
    return x.reshape(x.shape[0], -1)

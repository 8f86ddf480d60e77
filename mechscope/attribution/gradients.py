"""Gradient attributions on the input: saliency, gradient x input, integrated gradients, guided backprop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from mechscope.attribution.base import InputAttribution
from mechscope.attribution.targets import Target, resolve_target
from mechscope.capture import patch
from mechscope.errors import ConfigError, DataError, UnsupportedModelError

__all__ = ["Saliency", "GradientXInput", "IntegratedGradients", "GuidedBackprop", "guided_relus"]


class Saliency(InputAttribution):
    """Vanilla gradient saliency (Simonyan et al., 2014): max over channels of |d logit_c / d x|.

    Example:
        >>> maps = Saliency(model).attribute(images)        # (batch, height, width), >= 0
    """

    name = "saliency"
    label = "Saliency"
    channel_reduction: ClassVar[Literal["sum", "max_abs"]] = "max_abs"
    is_signed = False

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        return self.gradient(inputs, target)[0]


class GradientXInput(InputAttribution):
    """Gradient times input (Shrikumar et al., 2016), summed over channels; signed."""

    name = "gradient-x-input"
    label = "Gradient x Input"

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        return self.gradient(inputs, target)[0] * inputs


class IntegratedGradients(InputAttribution):
    """Integrated gradients (Sundararajan et al., 2017) along the straight path from a baseline.

    `(x - baseline) * mean_k grad(baseline + a_k (x - baseline))` with midpoints
    `a_k = (k + 1/2) / steps`; summed over pixels it approaches
    `logit_c(x) - logit_c(baseline)` (completeness) as `steps` grows.

    Args:
        model: A classifier.
        baseline: Reference image: a number, or a tensor broadcastable to the inputs.
        steps: Points on the path (>= 1).
        internal_batch_size: Path images per forward pass; bounds memory, not the result.
    """

    name = "integrated-gradients"
    label = "Integrated Gradients"

    def __init__(
        self,
        model: nn.Module,
        *,
        baseline: float | Tensor = 0.0,
        steps: int = 32,
        internal_batch_size: int = 2048,
    ) -> None:
        super().__init__(model)
        for flag, value in (("steps", steps), ("internal_batch_size", internal_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be a positive integer; got {value!r}.")
        self.baseline = baseline
        self.steps = steps
        self.internal_batch_size = internal_batch_size

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        with torch.no_grad():  # the target is the class of the image, not of points on the path
            index = resolve_target(target, self.model(inputs))
        baseline = self._baseline_like(inputs)
        delta = inputs - baseline
        alphas = (torch.arange(self.steps, device=inputs.device, dtype=inputs.dtype) + 0.5) / self.steps
        total = torch.zeros_like(inputs)
        batch = inputs.shape[0]
        per_chunk = max(1, self.internal_batch_size // batch)
        for chunk in alphas.split(per_chunk):
            path = baseline + chunk.view(-1, 1, 1, 1, 1) * delta  # (k, batch, channel, height, width)
            grad, _ = self.gradient(path.flatten(0, 1), index.repeat(chunk.numel()))
            total += grad.view(chunk.numel(), *inputs.shape).sum(dim=0)
        return delta * total / self.steps

    def _baseline_like(self, inputs: Tensor) -> Tensor:
        baseline = torch.as_tensor(self.baseline, dtype=inputs.dtype, device=inputs.device)
        try:
            return torch.broadcast_to(baseline, inputs.shape)
        except RuntimeError as err:
            raise DataError(
                f"baseline of shape {tuple(baseline.shape)} does not broadcast to inputs {tuple(inputs.shape)}; "
                "pass a number or a (channel, height, width) image."
            ) from err


class GuidedBackprop(InputAttribution):
    """Guided backpropagation (Springenberg et al., 2015): ReLUs pass only positive gradients back.

    Known to fail the parameter-randomisation sanity check (Adebayo et al., 2018): its maps
    mostly reflect the input, not what the model learned. Only `nn.ReLU` modules are guided;
    functional `F.relu` calls inside `forward` are not.
    """

    name = "guided-backprop"
    label = "Guided Backprop"

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        with guided_relus(self.model):
            return self.gradient(inputs, target)[0]


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward keeps only the positive part of the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


def _guide(output: Tensor, *, hook: object) -> Tensor:
    return _PositiveGradient.apply(output)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[list[str]]:
    """Make every `nn.ReLU` of `model` pass back only positive gradients while the block runs.

    Applied through `mechscope.capture.patch`, so the hooks are removed on exit, also when
    the block raises. Yields the names of the guided modules.

    Raises:
        UnsupportedModelError: The model has no `nn.ReLU` module.
    """
    names = [name for name, module in model.named_modules() if isinstance(module, nn.ReLU)]
    if not names:
        raise UnsupportedModelError(
            f"Guided backprop changes the backward pass of nn.ReLU modules, and {type(model).__name__} has none "
            "(functional relu calls cannot be guided); use Saliency or IntegratedGradients instead."
        )
    with patch(model, {name: _guide for name in names}):
        yield names

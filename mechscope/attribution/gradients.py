"""Gradient attributions on the input: saliency, gradient x input, integrated gradients, guided backprop.

Gradient x input and integrated gradients also explain token-id models, in the space of
the embedding layer's output (`mechscope.attribution.embeddings`): one score per token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from mechscope.attribution.base import InputAttribution
from mechscope.attribution.embeddings import embed_tokens, embedding_gradient
from mechscope.attribution.targets import Target, resolve_target
from mechscope.capture import patch
from mechscope.capture.outputs import OutputSpec
from mechscope.errors import ConfigError, DataError, UnsupportedModelError

__all__ = ["Saliency", "GradientXInput", "IntegratedGradients", "GuidedBackprop", "GUIDED_RULES", "guided_relus"]


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
    """Gradient times input (Shrikumar et al., 2016), summed over channels; signed.

    On token ids (batch, pos): gradient times embedding, summed over the embedding
    dimension, one score per token (`embedding=` names the embedding layer).

    Example:
        >>> GradientXInput(token_model).attribute(token_ids).shape   # (batch, pos)
    """

    name = "gradient-x-input"
    label = "Gradient x Input"

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        return self.gradient(inputs, target)[0] * inputs

    def embedding_scores(self, tokens: Tensor, embedding: str, target: Target) -> Tensor:
        embeds = embed_tokens(self.model, embedding, tokens)  # (batch, pos, d_model)
        grad, _ = embedding_gradient(self.model, embedding, tokens, embeds, target, output=self.output)
        return grad * embeds


class IntegratedGradients(InputAttribution):
    """Integrated gradients (Sundararajan et al., 2017) along the straight path from a baseline.

    `(x - baseline) * mean_k grad(baseline + a_k (x - baseline))` with midpoints
    `a_k = (k + 1/2) / steps`; summed over pixels it approaches
    `logit_c(x) - logit_c(baseline)` (completeness) as `steps` grows.

    On token ids (batch, pos) the path runs in embedding space, from the baseline to the
    embedding layer's output, and the scores are summed over the embedding dimension: one
    per token, summing to about `logit_c(x) - logit_c(baseline embeddings)`.

    Args:
        model: A classifier.
        baseline: Reference image (or embeddings, for token ids): a number, or a tensor
            broadcastable to the inputs (embeddings: (batch, pos, d_model)).
        steps: Points on the path (>= 1).
        internal_batch_size: Path images per forward pass; bounds memory, not the result.
        output: Which of the model's outputs holds the logits (see `Attribution`).
        embedding: For token ids, the embedding layer (see `InputAttribution`).

    Example:
        >>> IntegratedGradients(token_model, steps=128).attribute(token_ids)   # (batch, pos)
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
        output: OutputSpec = None,
        embedding: str | None = None,
    ) -> None:
        super().__init__(model, output=output, embedding=embedding)
        for flag, value in (("steps", steps), ("internal_batch_size", internal_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be a positive integer; got {value!r}.")
        self.baseline = baseline
        self.steps = steps
        self.internal_batch_size = internal_batch_size

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        with torch.no_grad():  # the target is the class of the image, not of points on the path
            index = resolve_target(target, self.model(inputs), output=self.output)
        return self._integrate(inputs, index, lambda path, rows: self.gradient(path, rows)[0])

    def embedding_scores(self, tokens: Tensor, embedding: str, target: Target) -> Tensor:
        with torch.no_grad():  # the target is the class of the input, not of points on the path
            index = resolve_target(target, self.model(tokens), output=self.output)
        embeds = embed_tokens(self.model, embedding, tokens)  # (batch, pos, d_model)

        def gradient(path: Tensor, rows: Tensor) -> Tensor:
            copies = tokens.repeat(path.shape[0] // tokens.shape[0], *([1] * (tokens.dim() - 1)))
            return embedding_gradient(self.model, embedding, copies, path, rows, output=self.output)[0]

        return self._integrate(embeds, index, gradient)

    def _integrate(self, inputs: Tensor, index: Tensor, gradient: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """`(x - baseline) * mean_k gradient(path_k)`, `gradient(points (k * batch, ...), targets (k * batch,))`."""
        baseline = self._baseline_like(inputs)
        delta = inputs - baseline
        # Path points and the sum of gradients in at least float32: a float16/bfloat16 model would
        # otherwise round the alphas (0.01 apart for 50 steps) and lose digits over the steps.
        wide = torch.promote_types(inputs.dtype, torch.float32)
        alphas = (torch.arange(self.steps, device=inputs.device, dtype=wide) + 0.5) / self.steps
        total = torch.zeros_like(inputs, dtype=wide)
        batch = inputs.shape[0]
        per_chunk = max(1, self.internal_batch_size // batch)
        for chunk in alphas.split(per_chunk):
            path = (baseline + chunk.view(-1, *([1] * inputs.dim())) * delta).to(inputs.dtype)  # (k, batch, ...)
            grad = gradient(path.flatten(0, 1), index.repeat(chunk.numel()))
            total += grad.reshape(chunk.numel(), *inputs.shape).to(wide).sum(dim=0)
        return (delta * total / self.steps).to(inputs.dtype)

    def _baseline_like(self, inputs: Tensor) -> Tensor:
        baseline = torch.as_tensor(self.baseline, dtype=inputs.dtype, device=inputs.device)
        try:
            return torch.broadcast_to(baseline, inputs.shape)
        except RuntimeError as err:
            raise DataError(
                f"baseline of shape {tuple(baseline.shape)} does not broadcast to inputs {tuple(inputs.shape)}; "
                "pass a number, a (channel, height, width) image, or for token ids (pos, d_model) embeddings."
            ) from err


class GuidedBackprop(InputAttribution):
    """Guided backpropagation (Springenberg et al., 2015): activations pass only positive gradients back.

    Every activation module is guided by its rule in `GUIDED_RULES` (ReLU, ReLU6, LeakyReLU,
    ELU, GELU and Hugging Face's GELU modules, SiLU, Hardswish); a model with any other activation module (Tanh, Sigmoid,
    Hardsigmoid, ...) is refused, naming it. Functional calls inside `forward` (`F.relu`)
    are not modules and are not guided.

    Known to fail the parameter-randomisation sanity check (Adebayo et al., 2018): its maps
    mostly reflect the input, not what the model learned.
    """

    name = "guided-backprop"
    label = "Guided Backprop"

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        with guided_relus(self.model):
            return self.gradient(inputs, target)[0]


GUIDED_RULES: dict[type[nn.Module], str] = {
    nn.ReLU: "[x > 0] * max(g, 0)",
    nn.ReLU6: "[0 < x < 6] * max(g, 0): also nothing back where the input is clipped at 6",
    nn.LeakyReLU: "[x > 0] * max(g, 0): like ReLU, the leak passes nothing back",
    nn.ELU: "elu'(x) * max(g, 0)",
    nn.GELU: "gelu'(x) * max(g, 0)",
    nn.SiLU: "silu'(x) * max(g, 0)",
    nn.Hardswish: "hardswish'(x) * max(g, 0)",
}
"""The guided backward pass of each activation module, for x its input and g the gradient
arriving at its output. Rectifiers pass only positive gradients, and only where the input was
positive (and, for ReLU6, below 6); smooth activations pass positive gradients scaled by
their own local gradient f'(x), which is what their backward already multiplies by. Hugging
Face's GELU modules (`GELUActivation`, `NewGELUActivation`, ...) follow the GELU rule."""

# transformers' activation classes that compute GELU (exact or approximated): smooth, guided like nn.GELU.
_HF_GELU = re.compile(r"^\w*GELU(Activation|Tanh)$")

# Elementwise nonlinearities without a guided rule: a model using one is refused.
_UNGUIDED = (
    nn.Hardtanh, nn.PReLU, nn.RReLU, nn.SELU, nn.CELU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign,
    nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.Threshold, nn.LogSigmoid,
)


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward keeps only the positive part of the incoming gradient.

    The activation's own backward then multiplies by its local gradient: [x > 0] for ReLU,
    [0 < x < 6] for ReLU6, f'(x) for the smooth ones.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


class _PositiveGradientWherePositive(torch.autograd.Function):
    """Identity forward; backward keeps the positive gradient only where the output is positive.

    On LeakyReLU with a non-negative slope the output is positive exactly where the input is,
    so the leak's slope never multiplies a gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x > 0)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (positive,) = ctx.saved_tensors
        return grad.clamp(min=0) * positive


def _guide(output: Tensor, *, hook: object) -> Tensor:
    return _PositiveGradient.apply(output)


def _guide_leaky(output: Tensor, *, hook: object) -> Tensor:
    return _PositiveGradientWherePositive.apply(output)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[list[str]]:
    """Guide every activation module of `model` by its rule in `GUIDED_RULES` while the block runs.

    Applied through `mechscope.capture.patch`, so the hooks are removed on exit, also when
    the block raises. Yields the names of the guided modules.

    Raises:
        UnsupportedModelError: The model has an activation module without a guided rule
            (named in the message), or no activation module at all.
    """
    guided: dict[str, Any] = {}
    unguided: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.LeakyReLU):
            if module.negative_slope < 0:
                unguided.append((name, f"LeakyReLU(negative_slope={module.negative_slope})"))
            guided[name] = _guide_leaky
        elif isinstance(module, tuple(GUIDED_RULES)) or _HF_GELU.match(type(module).__name__):
            guided[name] = _guide
        elif isinstance(module, _UNGUIDED) or (name and type(module).__name__.endswith("Activation")):
            unguided.append((name, type(module).__name__))
    rules = ", ".join(t.__name__ for t in GUIDED_RULES)
    if unguided:
        found = ", ".join(f"{kind} at {name!r}" for name, kind in unguided[:4]) + (", ..." if len(unguided) > 4 else "")
        raise UnsupportedModelError(
            f"Guided backprop has no rule for the activations of {type(model).__name__}: found {found}; it guides "
            f"{rules} (see GUIDED_RULES). Use Saliency or IntegratedGradients instead."
        )
    if not guided:
        raise UnsupportedModelError(
            f"Guided backprop changes the backward pass of activation modules ({rules}), and "
            f"{type(model).__name__} has none (functional calls such as F.relu cannot be guided); use Saliency "
            "or IntegratedGradients instead."
        )
    with patch(model, guided):
        yield list(guided)

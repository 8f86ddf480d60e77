"""Attribution families: a template-method base owning passes, targets, upsampling and normalisation.

`Attribution.attribute(inputs, target)` returns one map per image at input resolution,
shape (batch, height, width). Two families fill in the middle:

* `InputAttribution` (gradient methods): subclasses implement `input_scores`, a score per
  input element (batch, channel, height, width), reduced over channels.
* `LayerAttribution` (CAM methods): subclasses implement `channel_weights`, one weight per
  channel of a conv layer; the map is ReLU of the weighted sum of that layer's activation
  maps, upsampled bilinearly to the input size and divided by its maximum.

Hooks go through `mechscope.capture.patch`, so none outlives a call, even one that raises.
On CPU, conv activations run in channels-last memory layout (see `_layout`), which PyTorch's
CPU kernels process faster; the maps are the same up to float rounding.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mechscope.attribution._layout import channels_last_call
from mechscope.attribution.targets import Target, target_scores
from mechscope.capture import get_layer, patch
from mechscope.capture.record import model_device
from mechscope.data.dtypes import explain_dtype_errors
from mechscope.data.finite import check_finite as check_tensor_finite
from mechscope.errors import DataError, UnsupportedModelError
from mechscope.capture.modes import eval_mode

__all__ = [
    "Attribution",
    "InputAttribution",
    "LayerAttribution",
    "LayerPass",
    "default_layer",
    "upsample",
    "normalize_maps",
    "check_images",
    "run_layer_pass",
]

AttributionT = TypeVar("AttributionT", bound="Attribution")


class Attribution:
    """Explain a classifier's score for a target class with one map per image.

    Subclasses set `name` (command-line key) and `label` (figure and report text).

    Args:
        model: Any classifier mapping images (batch, channel, height, width) to logits
            (batch, n_classes). It runs in eval mode during a call; its mode is restored.
    """

    name: ClassVar[str] = "attribution"  # command-line name, e.g. "grad-cam"
    label: ClassVar[str] = "Attribution"  # display name, e.g. "Grad-CAM"
    is_signed: ClassVar[bool] = False  # True when maps may be negative
    uses_layer: ClassVar[bool] = False  # True when the constructor takes a `layer` name

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @classmethod
    def get_name(cls) -> str:
        """The display label used in figures and reports."""
        return cls.label

    def with_model(self: AttributionT, model: nn.Module) -> AttributionT:
        """Return a copy of this method, same settings, bound to `model` (e.g. a randomised copy)."""
        clone = copy.copy(self)
        clone.model = model
        return clone

    @overload
    def attribute(
        self, inputs: Tensor, target: Target = None, *, return_numpy: Literal[False] = False, check_finite: bool = True
    ) -> Tensor: ...

    @overload
    def attribute(
        self, inputs: Tensor, target: Target = None, *, return_numpy: Literal[True], check_finite: bool = True
    ) -> np.ndarray: ...

    def attribute(
        self, inputs: Tensor, target: Target = None, *, return_numpy: bool = False, check_finite: bool = True
    ) -> Tensor | np.ndarray:
        """Compute one attribution map per image.

        Args:
            inputs: Images (batch, channel, height, width); never modified.
            target: Class per image (see `mechscope.attribution.Target`); None = predicted class.
            return_numpy: Return a float numpy array instead of a tensor.
            check_finite: Raise DataError on NaN/inf in `inputs` (one `isfinite` per call);
                False computes the maps anyway (they will hold NaN).

        Returns:
            Maps (batch, height, width), detached, on the model's device (or numpy).

        Raises:
            DataError: `inputs` is not a float 4-D batch, holds NaN/inf, has another float
                dtype than the model's parameters, or a target is out of range.
            UnsupportedModelError: The model or layer does not fit the method.

        Example:
            >>> maps = GradCAM(model).attribute(x_test[:16])   # (16, 28, 28), each max 1
        """
        x = check_images(inputs, self.model, check_finite=check_finite)
        with eval_mode(self.model), explain_dtype_errors(self.model, x):
            maps = self._attribute(x, target).detach()
        return maps.cpu().numpy() if return_numpy else maps

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _attribute() or derive from a family base.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"


class InputAttribution(Attribution):
    """Gradient-family methods: a score per input element, reduced over channels.

    Subclasses override `input_scores`; `channel_reduction` picks how channels are combined
    ("sum" keeps the sign, "max_abs" takes the largest magnitude as in Simonyan et al., 2014).
    """

    channel_reduction: ClassVar[Literal["sum", "max_abs"]] = "sum"
    is_signed: ClassVar[bool] = True

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        scores = self.input_scores(inputs, target)  # (batch, channel, height, width)
        if self.channel_reduction == "max_abs":
            return scores.abs().amax(dim=1)
        return scores.sum(dim=1)

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        """Score every input element, shape (batch, channel, height, width)."""
        raise NotImplementedError(f"{type(self).__name__} must implement input_scores().")

    def gradient(self, inputs: Tensor, target: Target) -> tuple[Tensor, Tensor]:
        """Gradient of each image's target logit with respect to that image.

        Uses `torch.autograd.grad`, so parameter `.grad` fields are left untouched.

        Returns:
            (gradient (batch, channel, height, width), target class indices (batch,)).
        """
        x = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = channels_last_call(self.model, x, lambda: self.model(x))
            scores, index = target_scores(logits, target)
            (grad,) = torch.autograd.grad(scores.sum(), x)
        return grad.contiguous(), index


@dataclass(frozen=True)
class LayerPass:
    """What one pass through the model saw at the attributed layer."""

    acts: Tensor  # layer output (batch, channel, height, width), detached
    grads: Tensor | None  # d(target logit)/d(acts), same shape; None when not needed
    target: Tensor  # class index per image (batch,)
    logits: Tensor  # model output (batch, n_classes), detached


class LayerAttribution(Attribution):
    """CAM-family methods: weight a conv layer's channels for the target class.

    The map is `ReLU(sum_k weight_k * A_k)`, upsampled to the input size and divided by its
    maximum (all-zero maps stay zero). `layer_map` returns the weighted sum before those
    steps, at the layer's resolution. Subclasses override `channel_weights`.

    Args:
        model: A CNN classifier.
        layer: Dotted name of the conv layer (its output is used); None picks
            `model.last_conv` if the model has it, else the last `nn.Conv2d`.
    """

    needs_gradients: ClassVar[bool] = True  # capability flag: does channel_weights read grads?
    is_signed: ClassVar[bool] = False
    uses_layer: ClassVar[bool] = True

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        super().__init__(model)
        self.layer = default_layer(model) if layer is None else layer
        get_layer(model, self.layer)  # unknown names fail now, with close matches

    def channel_weights(self, layer_pass: LayerPass) -> Tensor:
        """One weight per channel and image, shape (batch, channel)."""
        raise NotImplementedError(f"{type(self).__name__} must implement channel_weights().")

    def layer_map(self, inputs: Tensor, target: Target = None, *, check_finite: bool = True) -> Tensor:
        """The weighted channel sum before ReLU, upsampling and normalisation, (batch, height', width').

        `inputs`, `target` and `check_finite` are as in `attribute`.
        """
        x = check_images(inputs, self.model, check_finite=check_finite)
        with eval_mode(self.model), explain_dtype_errors(self.model, x):
            return self._layer_map(x, target).detach()

    def _layer_map(self, inputs: Tensor, target: Target) -> Tensor:
        layer_pass = run_layer_pass(self.model, self.layer, inputs, target, needs_gradients=self.needs_gradients)
        weights = self.channel_weights(layer_pass)  # (batch, channel)
        return torch.einsum("bc,bchw->bhw", weights, layer_pass.acts)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        maps = torch.relu(self._layer_map(inputs, target))
        return normalize_maps(upsample(maps, (inputs.shape[-2], inputs.shape[-1])))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer!r})"


def run_layer_pass(model: nn.Module, layer: str, inputs: Tensor, target: Target, *, needs_gradients: bool) -> LayerPass:
    """Run `model` once, recording `layer`'s output and, if asked, the target's gradient there.

    Everything before the layer runs without autograd; the layer output becomes a fresh leaf
    from which the rest of the forward pass is recorded, so the backward pass stops at the
    layer instead of running through the whole network.
    """
    seen: list[Tensor] = []

    def grab(output: Tensor, *, hook: object) -> Tensor | None:
        leaf = output.detach()
        seen.append(leaf)
        if not needs_gradients:
            return None
        leaf.requires_grad_(True)
        torch.set_grad_enabled(True)  # record the rest of this forward pass (restored below)
        return leaf.clone()  # a non-leaf copy, so later in-place layers may modify it

    def forward() -> Tensor:
        seen.clear()
        torch.set_grad_enabled(False)  # the layer's hook switches it on for the rest of the pass
        with patch(model, {layer: grab}):
            return model(inputs)

    was_enabled = torch.is_grad_enabled()
    try:
        logits = channels_last_call(model, inputs, forward)
    finally:
        torch.set_grad_enabled(was_enabled)
    if len(seen) != 1:
        raise UnsupportedModelError(
            f"Layer {layer!r} ran {len(seen)} times in one forward pass; attribute a module that runs exactly once "
            "(list names with mechscope.layer_names(model))."
        )
    acts = seen[0]
    if acts.dim() != 4:
        raise UnsupportedModelError(
            f"Layer {layer!r} outputs shape {tuple(acts.shape)}; CAM methods need a conv layer with output "
            "(batch, channel, height, width). Pick a convolutional layer, e.g. the last conv activation."
        )
    with torch.enable_grad():
        scores, index = target_scores(logits, target)
        grads = None
        if needs_gradients:
            (grads,) = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
            if grads is None:
                raise UnsupportedModelError(
                    f"The model's output does not depend on layer {layer!r}; pick a layer on the path to the logits."
                )
    return LayerPass(acts=acts.detach(), grads=grads, target=index, logits=logits.detach())


def default_layer(model: nn.Module) -> str:
    """`model.last_conv` when the model names it, else the last `nn.Conv2d` module.

    Raises:
        UnsupportedModelError: The model has no convolution to attribute.
    """
    named = getattr(model, "last_conv", None)
    if isinstance(named, str):
        return named
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no nn.Conv2d layer and no `last_conv` attribute; pass layer=... naming "
            "a layer with (batch, channel, height, width) output."
        )
    return convs[-1]


def check_images(inputs: Tensor, model: nn.Module, *, check_finite: bool = True) -> Tensor:
    """Validate a float image batch (finite unless `check_finite` is False) and move it to the model's device.

    Raises:
        DataError: `inputs` is not a non-empty float 4-D tensor, or holds NaN/inf.
    """
    if not isinstance(inputs, Tensor):
        raise DataError(
            f"inputs must be a torch.Tensor of images (batch, channel, height, width); got {type(inputs).__name__}. "
            "Convert arrays with torch.as_tensor(x, dtype=torch.float32)."
        )
    if inputs.dim() != 4 or not inputs.is_floating_point() or inputs.shape[0] == 0:
        raise DataError(
            f"inputs must be a non-empty float batch (batch, channel, height, width); got {inputs.dtype} "
            f"{tuple(inputs.shape)}. Add a batch dimension with x[None] for a single image."
        )
    if check_finite:
        check_tensor_finite(inputs, "inputs", skip_with="check_finite=False")
    return inputs.to(model_device(model))


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize maps (batch, height, width) to `size`, as `F.interpolate(align_corners=False)`.

    Bilinear resizing is separable and linear, so it runs as two small matrix products with
    cached interpolation matrices; that is several times faster than `F.interpolate` on CPU
    for the small maps CAM methods produce.
    """
    h, w = maps.shape[-2:]
    if (h, w) == tuple(size):
        return maps
    rows = _interpolation_matrix(h, size[0], maps.device, maps.dtype)  # (height, h)
    cols = _interpolation_matrix(w, size[1], maps.device, maps.dtype)  # (width, w)
    return rows @ maps @ cols.T


@functools.lru_cache(maxsize=32)
def _interpolation_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    basis = torch.eye(n_in, dtype=dtype, device=device)[None]  # (1, n_in, n_in): one impulse per row
    return F.interpolate(basis, size=n_out, mode="linear", align_corners=False)[0].T.contiguous()


def normalize_maps(maps: Tensor) -> Tensor:
    """Divide each map (batch, ...) by its maximum; maps whose maximum is <= 0 are returned unchanged."""
    peak = maps.flatten(1).amax(dim=1)
    scale = torch.where(peak > 0, peak, torch.ones_like(peak))
    return maps / scale.view(-1, *([1] * (maps.dim() - 1)))

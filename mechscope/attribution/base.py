"""Attribution families: a template-method base owning passes, targets, upsampling and normalisation.

`Attribution.attribute(inputs, target)` returns one map per image at input resolution,
shape (batch, height, width). Two families fill in the middle:

* `InputAttribution` (gradient methods): subclasses implement `input_scores`, a score per
  input element (batch, channel, height, width), reduced over channels.
* `LayerAttribution` (CAM methods): subclasses implement `channel_weights`, one weight per
  channel of a conv layer; the map is ReLU of the weighted sum of that layer's activation
  maps, upsampled bilinearly to the input size and divided by its maximum. A token layer
  (batch, tokens, d_model), e.g. a ViT block, is laid on its patch grid first
  (`mechscope.attribution.token_grid`). Without a
  named layer they use `mechscope.capture.default_layer`, the rule shared with circuits
  and the report.

The explained output is chosen with `output=` (`mechscope.capture.select_output`): None
takes a tensor as is, or the "logits" entry of a dict or Hugging Face `ModelOutput`; a key,
an index or a callable picks another.

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
from mechscope.attribution.embeddings import check_tokens, find_token_embedding, is_token_ids, token_embedding
from mechscope.attribution.targets import Target, target_scores
from mechscope.attribution.token_grid import TokenGrid, infer_token_grid
from mechscope.capture import default_layer, get_layer, patch, select_output
from mechscope.capture.outputs import OutputSpec
from mechscope.capture.units import layer_unit_axes
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
        output: Which of the model's outputs holds the logits (see
            `mechscope.capture.select_output`): None (auto), a key, an index or a callable.
    """

    name: ClassVar[str] = "attribution"  # command-line name, e.g. "grad-cam"
    label: ClassVar[str] = "Attribution"  # display name in figures and reports, e.g. "Grad-CAM"
    is_signed: ClassVar[bool] = False  # True when maps may be negative
    uses_layer: ClassVar[bool] = False  # True when the constructor takes a `layer` name

    def __init__(self, model: nn.Module, *, output: OutputSpec = None) -> None:
        self.model = model
        self.output = output

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
            inputs: Images (batch, channel, height, width), or token ids (batch, pos) for the
                methods that attribute through the embedding layer (`GradientXInput`,
                `IntegratedGradients`); never modified.
            target: Class per image (see `mechscope.attribution.targets.Target`); None = predicted class.
            return_numpy: Return a float numpy array instead of a tensor.
            check_finite: Raise DataError on NaN/inf in `inputs` (one `isfinite` per call);
                False computes the maps anyway (they will hold NaN).

        Returns:
            Maps (batch, height, width), or one score per token (batch, pos) for token ids;
            detached, on the model's device (or numpy).

        Raises:
            DataError: `inputs` is not a float 4-D batch, holds NaN/inf, has another float
                dtype than the model's parameters, or a target is out of range.
            UnsupportedModelError: The model or layer does not fit the method, or its
                explained output is ambiguous (pass `output=` to the constructor).

        Example:
            >>> maps = GradCAM(model).attribute(x_test[:16])   # (16, 28, 28), each max 1
        """
        if is_token_ids(inputs) and self._token_embedding() is not None:
            with eval_mode(self.model):
                maps = self._attribute_tokens(inputs, target).detach()
            return maps.cpu().numpy() if return_numpy else maps
        x = check_images(inputs, self.model, check_finite=check_finite)
        with eval_mode(self.model), explain_dtype_errors(self.model, x):
            maps = self._attribute(x, target).detach()
        return maps.cpu().numpy() if return_numpy else maps

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _attribute() or derive from a family base.")

    def _token_embedding(self) -> str | None:
        """The layer embedding token-id inputs, or None when the model has none (ids are then rejected)."""
        return find_token_embedding(self.model)

    def _attribute_tokens(self, tokens: Tensor, target: Target) -> Tensor:
        """One score per token (batch, pos) for token-id inputs; only embedding-space methods have it."""
        raise UnsupportedModelError(
            f"{self.label} explains images (batch, channel, height, width), and the inputs are token ids "
            f"({tokens.dtype} {tuple(tokens.shape)}); use GradientXInput or IntegratedGradients, which attribute "
            "through the model's embedding layer."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"


class InputAttribution(Attribution):
    """Gradient-family methods: a score per input element, reduced over channels.

    Subclasses override `input_scores`; `channel_reduction` picks how channels are combined
    ("sum" keeps the sign, "max_abs" takes the largest magnitude as in Simonyan et al., 2014).
    Those that also override `embedding_scores` explain token-id models through their
    embedding layer (`mechscope.attribution.embeddings`), one score per token.

    Args:
        model: A classifier (see `Attribution`).
        output: Which of the model's outputs holds the logits (see `Attribution`).
        embedding: For token-id inputs, the layer embedding the ids; None takes the model's
            `get_input_embeddings()` or its first `nn.Embedding`.
    """

    channel_reduction: ClassVar[Literal["sum", "max_abs"]] = "sum"
    is_signed: ClassVar[bool] = True

    def __init__(self, model: nn.Module, *, output: OutputSpec = None, embedding: str | None = None) -> None:
        super().__init__(model, output=output)
        self.embedding = embedding

    def _token_embedding(self) -> str | None:
        return find_token_embedding(self.model, self.embedding)

    def _attribute_tokens(self, tokens: Tensor, target: Target) -> Tensor:
        layer = token_embedding(self.model, self.embedding)
        return self.embedding_scores(check_tokens(tokens, self.model, layer), layer, target).sum(dim=-1)

    def embedding_scores(self, tokens: Tensor, embedding: str, target: Target) -> Tensor:
        """Score every embedding entry of token ids (batch, pos): (batch, pos, d_model)."""
        raise UnsupportedModelError(
            f"{self.label} has no embedding-space form for token ids; use GradientXInput or IntegratedGradients."
        )

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
            outputs = channels_last_call(self.model, x, lambda: self.model(x))
            scores, index = target_scores(outputs, target, output=self.output)
            (grad,) = torch.autograd.grad(scores.sum(), x)
        return grad.contiguous(), index


@dataclass(frozen=True)
class LayerPass:
    """What one pass through the model saw at the attributed layer."""

    acts: Tensor  # layer output (batch, channel, height, width), detached
    grads: Tensor | None  # d(target logit)/d(acts), same shape; None when not needed
    target: Tensor  # class index per image (batch,)
    logits: Tensor  # explained model output (batch, n_classes), detached


class LayerAttribution(Attribution):
    """CAM-family methods: weight a conv layer's channels for the target class.

    The map is `ReLU(sum_k weight_k * A_k)`, upsampled to the input size and divided by its
    maximum (all-zero maps stay zero). `layer_map` returns the weighted sum before those
    steps, at the layer's resolution. Subclasses override `channel_weights`.

    Args:
        model: A CNN classifier.
        layer: Dotted name of the conv layer (its output is used); None picks
            `mechscope.capture.default_layer(model, inputs[:1])` on the first call (the last
            spatial map, after its nonlinearity, at the block output) and keeps it in `layer`.
        output: Which of the model's outputs holds the logits (see `Attribution`).
        token_grid: For a token layer (batch, tokens, d_model): its (h, w) patch grid; None
            infers a square one (see `mechscope.attribution.token_grid`).
        skip_tokens: Leading non-patch tokens of a token layer (1 for a class token); None
            infers them.
    """

    needs_gradients: ClassVar[bool] = True  # capability flag: does channel_weights read grads?
    is_signed: ClassVar[bool] = False
    uses_layer: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        output: OutputSpec = None,
        token_grid: tuple[int, int] | None = None,
        skip_tokens: int | None = None,
    ) -> None:
        super().__init__(model, output=output)
        self.layer = layer
        self.token_grid = token_grid
        self.skip_tokens = skip_tokens
        if layer is not None:
            get_layer(model, layer)  # unknown names fail now, with close matches

    def resolved_layer(self, inputs: Tensor) -> str:
        """The attributed layer: `layer` as given, else the default layer for `inputs`, found once and kept."""
        if self.layer is None:
            self.layer = default_layer(self.model, inputs[:1], output=self.output)
        return self.layer

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
        layer_pass = run_layer_pass(
            self.model, self.resolved_layer(inputs), inputs, target, needs_gradients=self.needs_gradients,
            output=self.output, token_grid=self.token_grid, skip_tokens=self.skip_tokens,
        )
        weights = self.channel_weights(layer_pass)  # (batch, channel)
        return torch.einsum("bc,bchw->bhw", weights, layer_pass.acts)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        maps = torch.relu(self._layer_map(inputs, target))
        return normalize_maps(upsample(maps, (inputs.shape[-2], inputs.shape[-1])))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer!r})"


def run_layer_pass(
    model: nn.Module,
    layer: str,
    inputs: Tensor,
    target: Target,
    *,
    needs_gradients: bool,
    output: OutputSpec = None,
    token_grid: tuple[int, int] | None = None,
    skip_tokens: int | None = None,
) -> LayerPass:
    """Run `model` once, recording `layer`'s output and, if asked, the target's gradient there.

    `output` picks the explained output (see `mechscope.capture.select_output`). A token
    layer's output (batch, tokens, d_model) and its gradient are returned on their patch grid,
    (batch, d_model, h, w), as `token_grid` and `skip_tokens` say or inferred from a square
    token count (see `mechscope.attribution.token_grid`).

    Everything before the layer runs without autograd; the layer output becomes a fresh leaf
    from which the rest of the forward pass is recorded, so the backward pass stops at the
    layer instead of running through the whole network.
    """
    seen: list[Tensor] = []

    def grab(output: Tensor, *, hook: object) -> Tensor | None:
        # A copy: a later in-place op (ReLU(inplace=True), `out += identity`) must not change it.
        leaf = output.detach().clone()
        seen.append(leaf)
        if not needs_gradients:
            return None
        leaf.requires_grad_(True)
        torch.set_grad_enabled(True)  # record the rest of this forward pass (restored below)
        return leaf.clone()  # a non-leaf copy, so later in-place layers may modify it

    def forward() -> object:
        seen.clear()
        torch.set_grad_enabled(False)  # the layer's hook switches it on for the rest of the pass
        with patch(model, {layer: grab}):
            return model(inputs)

    was_enabled = torch.is_grad_enabled()
    try:
        logits = select_output(channels_last_call(model, inputs, forward), output)
    finally:
        torch.set_grad_enabled(was_enabled)
    if len(seen) != 1:
        raise UnsupportedModelError(
            f"Layer {layer!r} ran {len(seen)} times in one forward pass; attribute one call of it, "
            f"{layer + ':0'!r} to {layer + f':{len(seen) - 1}'!r}, or a module that runs exactly once "
            "(list names and calls with mechscope.layer_names(model, example))."
        )
    acts = seen[0]
    grid = None if acts.dim() == 4 else _token_grid(model, layer, acts, token_grid, skip_tokens)
    with torch.enable_grad():
        scores, index = target_scores(logits, target)
        grads = None
        if needs_gradients:
            (grads,) = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
            if grads is None:
                raise UnsupportedModelError(
                    f"The model's output does not depend on layer {layer!r}; pick a layer on the path to the logits."
                )
    if grid is not None:  # (batch, tokens, d_model) -> (batch, d_model, h, w)
        return LayerPass(acts=grid.to_maps(acts.detach()), grads=None if grads is None else grid.to_maps(grads),
                         target=index, logits=logits.detach())
    return LayerPass(acts=acts.detach(), grads=grads, target=index, logits=logits.detach())


def _token_grid(
    model: nn.Module, layer: str, acts: Tensor, token_grid: tuple[int, int] | None, skip_tokens: int | None
) -> TokenGrid:
    """The patch grid of a token layer's output; UnsupportedModelError for any other non-map output."""
    is_tokens = acts.dim() == 3 and (
        token_grid is not None or skip_tokens is not None or layer_unit_axes(model, layer, acts.shape).kind == "sequence"
    )
    if not is_tokens:
        raise UnsupportedModelError(
            f"Layer {layer!r} outputs shape {tuple(acts.shape)}; CAM methods need a conv layer with output "
            "(batch, channel, height, width) or a token layer (batch, tokens, d_model) on a patch grid. Pick a "
            "convolutional layer, e.g. the last conv activation, or a transformer block."
        )
    return infer_token_grid(acts.shape[1], token_grid=token_grid, skip_tokens=skip_tokens, layer=layer)


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
            f"{tuple(inputs.shape)}. Add a batch dimension with x[None] for a single image"
            + ("; token ids need a model with an nn.Embedding, or embedding= naming the layer that embeds them."
               if is_token_ids(inputs) else ".")
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

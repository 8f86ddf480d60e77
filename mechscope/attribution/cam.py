"""Class activation maps: CAM, Grad-CAM, Grad-CAM++ and guided Grad-CAM.

All weight the channels of one conv layer's output `A` (batch, channel, height, width)
for a target class c and return `ReLU(sum_k w_k A_k)`, upsampled and divided by its max:

* CAM (Zhou et al., 2016): `w_k = fc.weight[c, k]`; exact for conv -> global average
  pool -> one Linear, where `logit_c = b_c + mean_hw(sum_k w_k A_k)`.
* Grad-CAM (Selvaraju et al., 2017): `w_k = mean_hw d logit_c / d A_k`. On a GAP model that
  equals `fc.weight[c, k] / (height * width)`, so Grad-CAM times the spatial size is CAM.
* Grad-CAM++ (Chattopadhay et al., 2018): positive gradients weighted per location; the
  channel weights are those of pytorch-grad-cam's `GradCAMPlusPlus.get_cam_weights`.

On a token layer (batch, tokens, d_model), e.g. a ViT block, the patch tokens are laid on
their h x w grid with the features as channels (`token_grid=(h, w)`, `skip_tokens=` or
inferred from a square count; see `mechscope.attribution.token_grid`) and the same weights
apply: Grad-CAM weights feature k by its gradient averaged over the patches.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from mechscope.attribution.base import InputAttribution, LayerAttribution, LayerPass
from mechscope.attribution.gradients import guided_relus
from mechscope.attribution.targets import Target
from mechscope.capture import get_layer
from mechscope.capture.outputs import OutputSpec
from mechscope.errors import UnsupportedModelError

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "GuidedGradCAM"]

_CAM_SHAPE = (
    "CAM needs conv -> global average pool -> one Linear head (e.g. DigitCNNConfig(gap=True)); "
    "Grad-CAM works on any CNN."
)


class CAM(LayerAttribution):
    """Class activation map from the linear head's weights; needs no gradients.

    Args:
        model: conv trunk -> global average pooling -> one `nn.Linear` producing the logits.
        layer: The conv layer feeding the pooling (default: `mechscope.capture.default_layer`).
        head: Name of that Linear; None picks the model's last `nn.Linear`.
        output: Which of the model's outputs holds the logits (see `Attribution`).
        token_grid: Patch grid of a token layer (see `LayerAttribution`).
        skip_tokens: Leading non-patch tokens of a token layer (see `LayerAttribution`).

    Raises:
        UnsupportedModelError: (on `attribute`) the logits are not the head applied to the
            spatial mean of `layer`, i.e. the model is not shaped as CAM needs.

    Example:
        >>> maps = CAM(gap_model).attribute(images, target=3)
    """

    name = "cam"
    label = "CAM"
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        head: str | None = None,
        output: OutputSpec = None,
        token_grid: tuple[int, int] | None = None,
        skip_tokens: int | None = None,
    ) -> None:
        super().__init__(model, layer, output=output, token_grid=token_grid, skip_tokens=skip_tokens)
        self.head = _last_linear(model) if head is None else head
        if not isinstance(get_layer(model, self.head), nn.Linear):
            raise UnsupportedModelError(f"CAM head {self.head!r} is a {type(get_layer(model, self.head)).__name__}, "
                                        f"not nn.Linear. {_CAM_SHAPE}")

    def channel_weights(self, layer_pass: LayerPass) -> Tensor:
        head = get_layer(self.model, self.head)
        if not isinstance(head, nn.Linear):  # the model was changed after construction
            raise UnsupportedModelError(f"CAM head {self.head!r} is no longer an nn.Linear. {_CAM_SHAPE}")
        weight = head.weight.detach()  # (n_classes, channel)
        channels = layer_pass.acts.shape[1]
        if weight.shape[1] != channels or weight.shape[0] != layer_pass.logits.shape[1]:
            raise UnsupportedModelError(
                f"Layer {self.layer!r} has {channels} channels but head {self.head!r} maps {weight.shape[1]} "
                f"inputs to {weight.shape[0]} outputs (the model returns {layer_pass.logits.shape[1]} logits). "
                f"{_CAM_SHAPE}"
            )
        _check_gap_head(layer_pass, head, str(self.layer), self.head)
        return weight[layer_pass.target]


class GradCAM(LayerAttribution):
    """Grad-CAM: weight each channel by its spatially averaged gradient.

    Example:
        >>> maps = GradCAM(model, "relu3").attribute(images)    # predicted class, max 1 per map
    """

    name = "grad-cam"
    label = "Grad-CAM"

    def channel_weights(self, layer_pass: LayerPass) -> Tensor:
        return _grads(layer_pass).mean(dim=(2, 3))


class GradCAMPlusPlus(LayerAttribution):
    """Grad-CAM++: `w_k = sum_ij a_ij relu(g_ij)` with `a_ij = g_ij^2 / (2 g_ij^2 + S_k g_ij^3 + 1e-6)`.

    `g` is the gradient of the target logit at the layer, `S_k` the spatial sum of channel
    k's activations, and `a_ij = 0` wherever `g_ij = 0`. This is the closed form for an
    exponential of the logit (the paper's eq. 19) exactly as pytorch-grad-cam's
    `GradCAMPlusPlus.get_cam_weights` computes it, epsilon included, so the channel weights
    agree with it to float precision. The maps then differ in post-processing only: here
    ReLU, bilinear upsampling and division by the maximum; there ReLU, min-max scaling
    and `cv2.resize`.
    """

    name = "grad-cam++"
    label = "Grad-CAM++"
    eps: ClassVar[float] = 1e-6  # pytorch-grad-cam's value, so the weights match

    def channel_weights(self, layer_pass: LayerPass) -> Tensor:
        grads, acts = _grads(layer_pass), layer_pass.acts
        g2 = grads.pow(2)
        g3 = g2 * grads
        denominator = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3 + self.eps
        alpha = torch.where(grads != 0, g2 / denominator, torch.zeros_like(grads))
        return (torch.relu(grads) * alpha).sum(dim=(2, 3))


class GuidedGradCAM(InputAttribution):
    """Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map, per input element.

    Inherits guided backprop's failure of the randomisation sanity check.

    Args:
        model: A CNN classifier with `nn.ReLU` modules.
        layer: Conv layer for the Grad-CAM factor (default: `mechscope.capture.default_layer`,
            found on the first call and kept in `layer`).
        output: Which of the model's outputs holds the logits (see `Attribution`).
    """

    name = "guided-grad-cam"
    label = "Guided Grad-CAM"
    uses_layer: ClassVar[bool] = True

    def __init__(self, model: nn.Module, layer: str | None = None, *, output: OutputSpec = None) -> None:
        super().__init__(model, output=output)
        self.layer = GradCAM(model, layer).layer

    def input_scores(self, inputs: Tensor, target: Target) -> Tensor:
        with guided_relus(self.model):
            guided, index = self.gradient(inputs, target)
        grad_cam = GradCAM(self.model, self.layer, output=self.output)
        cam = grad_cam._attribute(inputs, index)  # (batch, height, width)
        self.layer = grad_cam.layer  # the default layer, once found
        return guided * cam[:, None]


def _grads(layer_pass: LayerPass) -> Tensor:
    if layer_pass.grads is None:
        raise UnsupportedModelError("This CAM method needs gradients at the layer; set needs_gradients = True.")
    return layer_pass.grads


def _last_linear(model: nn.Module) -> str:
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise UnsupportedModelError(f"{type(model).__name__} has no nn.Linear head. {_CAM_SHAPE}")
    return linears[-1]


def _check_gap_head(layer_pass: LayerPass, head: nn.Linear, layer: str, head_name: str) -> None:
    """Raise unless logits == head(spatial mean of the layer) for this batch."""
    pooled = layer_pass.acts.mean(dim=(2, 3))  # (batch, channel)
    with torch.no_grad():
        predicted = head(pooled)
    scale = 1.0 + float(layer_pass.logits.abs().max())
    error = float((predicted - layer_pass.logits).abs().max())
    if error > 1e-4 * scale:
        raise UnsupportedModelError(
            f"The logits are not {head_name!r} applied to the spatial mean of {layer!r} (max difference "
            f"{error:.3g}), so CAM would not explain this model. {_CAM_SHAPE}"
        )

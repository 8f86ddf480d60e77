from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mechscope.attribution import CAM, GradCAM, GradCAMPlusPlus, GuidedBackprop, GuidedGradCAM
from mechscope.attribution.base import LayerPass, normalize_maps, run_layer_pass, upsample
from mechscope.errors import UnsupportedModelError


class MaxPoolHead(nn.Module):
    """conv -> ReLU -> global MAX pool -> linear: head shapes fit CAM, but the pooling does not."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1).double() - a.flatten(1).double().mean(dim=1, keepdim=True)
    b = b.flatten(1).double() - b.flatten(1).double().mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))


@pytest.mark.parametrize("target", [None, 3])
def test_gradcam_times_spatial_size_equals_cam_on_gap_model(target, gap_cnn, x8):
    cam = CAM(gap_cnn).layer_map(x8, target)
    grad_cam = GradCAM(gap_cnn).layer_map(x8, target)
    height, width = cam.shape[-2:]
    assert (grad_cam * height * width - cam).abs().max() <= 1e-5


def test_gradcam_times_spatial_size_equals_cam_at_finer_resolution(small_conv_net, images):
    # 8x8 activation maps: the relation holds at every spatial size, not only 2x2.
    cam = CAM(small_conv_net, "features.3", head="fc").layer_map(images)
    grad_cam = GradCAM(small_conv_net, "features.3").layer_map(images)
    assert cam.shape == (5, 8, 8)
    assert (grad_cam * 64 - cam).abs().max() <= 1e-5


def test_cam_equals_gradcam_after_relu_and_normalisation(gap_cnn, x8):
    assert torch.allclose(CAM(gap_cnn).attribute(x8), GradCAM(gap_cnn).attribute(x8), atol=1e-6)


def test_cam_rejects_dense_head_with_shape_message(dense_cnn, x8):
    with pytest.raises(UnsupportedModelError, match="32 channels but head 'fc2' maps 64 inputs.*global average pool"):
        CAM(dense_cnn).attribute(x8)


def test_cam_rejects_head_that_is_not_fed_by_an_average(x8):
    with pytest.raises(UnsupportedModelError, match="not 'fc' applied to the spatial mean of 'act'"):
        CAM(MaxPoolHead(), "act").attribute(x8)


def test_cam_head_must_be_linear(gap_cnn):
    with pytest.raises(UnsupportedModelError, match="not nn.Linear"):
        CAM(gap_cnn, head="conv3")


@pytest.mark.parametrize("model_name", ["gap_cnn", "dense_cnn"])
def test_gradcam_agrees_with_captum_layer_gradcam(model_name, request, x8):
    captum_attr = pytest.importorskip("captum.attr")
    model = request.getfixturevalue(model_name)
    target = model(x8).argmax(dim=1)
    reference = captum_attr.LayerGradCam(model, model.relu3).attribute(x8, target=target)[:, 0].detach()
    ours = GradCAM(model).layer_map(x8, target)
    assert _pearson(ours, reference).min() >= 0.999
    # After ReLU, upsampling and normalisation the maps agree too.
    up = captum_attr.LayerAttribution.interpolate(reference.clamp(min=0)[:, None], (8, 8), "bilinear")[:, 0]
    up = up / up.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    assert torch.allclose(GradCAM(model).attribute(x8, target), up, atol=1e-5)


def test_gradcam_finer_layer_agrees_with_captum(gap_cnn, x8):
    captum_attr = pytest.importorskip("captum.attr")
    reference = captum_attr.LayerGradCam(gap_cnn, gap_cnn.relu2).attribute(x8, target=1)[:, 0].detach()
    ours = GradCAM(gap_cnn, "relu2").layer_map(x8, 1)
    assert ours.shape == (6, 4, 4)
    assert _pearson(ours, reference).min() >= 0.999


def test_gradcam_plus_plus_closed_form_on_gap_model(gap_cnn, x8):
    # On a GAP head the gradient at the layer is fc.weight[c] / (h w) everywhere, so the weights
    # reduce to w_k = h w relu(g_k) / (2 + S_k g_k) with S_k the spatial sum of channel k.
    target = torch.full((6,), 4)
    weights_map = GradCAMPlusPlus(gap_cnn).layer_map(x8, target)
    with torch.no_grad():
        acts = gap_cnn.relu3(gap_cnn.conv3(gap_cnn.pool2(gap_cnn.relu2(gap_cnn.conv2(gap_cnn.pool1(
            gap_cnn.relu1(gap_cnn.conv1(x8))))))))
    hw = acts.shape[-2] * acts.shape[-1]
    g = (gap_cnn.fc.weight[4] / hw).detach().expand(6, -1)
    s = acts.sum(dim=(2, 3))
    w = torch.where(g != 0, hw * torch.relu(g) * g**2 / (2 * g**2 + s * g**3 + 1e-6), torch.zeros_like(g))
    expected = torch.einsum("bc,bchw->bhw", w, acts)
    assert torch.allclose(weights_map, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", [CAM, GradCAM, GradCAMPlusPlus])
def test_cam_family_maps_are_nonnegative_with_peak_one(method, gap_cnn, x8):
    maps = method(gap_cnn).attribute(x8)
    assert maps.min() >= 0
    peaks = maps.amax(dim=(1, 2))
    assert torch.all((peaks - 1).abs() < 1e-6)


def test_cam_family_upsamples_bilinearly_from_layer_resolution(gap_cnn, x8):
    raw = torch.relu(GradCAM(gap_cnn).layer_map(x8))
    expected = F.interpolate(raw[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    expected = expected / expected.amax(dim=(1, 2), keepdim=True)
    assert torch.allclose(GradCAM(gap_cnn).attribute(x8), expected, atol=1e-6)
    assert torch.allclose(upsample(raw, (8, 8)), F.interpolate(raw[:, None], (8, 8), mode="bilinear")[:, 0], atol=1e-6)


def test_guided_gradcam_is_guided_backprop_times_gradcam(gap_cnn, x8):
    target = gap_cnn(x8).argmax(dim=1)
    expected = GuidedBackprop(gap_cnn).attribute(x8, target) * GradCAM(gap_cnn).attribute(x8, target)
    assert torch.allclose(GuidedGradCAM(gap_cnn).attribute(x8), expected, atol=1e-7)


def _grad_cam_plus_plus_weights(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's GradCAMPlusPlus.get_cam_weights, restated in NumPy (the package is not a dependency)."""
    grads_power_2 = grads**2
    grads_power_3 = grads_power_2 * grads
    sum_activations = np.sum(activations, axis=(2, 3))
    eps = 0.000001
    aij = grads_power_2 / (2 * grads_power_2 + sum_activations[:, :, None, None] * grads_power_3 + eps)
    aij = np.where(grads != 0, aij, 0)
    weights = np.maximum(grads, 0) * aij
    return np.sum(weights, axis=(2, 3))


@pytest.mark.parametrize("scale", [1.0, 1e-3])  # at 1e-3, g^2 is as small as eps: the epsilon must match
def test_gradcam_plus_plus_weights_match_pytorch_grad_cam_formula(scale):
    g = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(3, 5, 4, 6, generator=g, dtype=torch.float64))
    grads = scale * torch.randn(3, 5, 4, 6, generator=g, dtype=torch.float64)
    grads[grads.abs() < 0.3 * scale] = 0.0  # exact zeros take the np.where branch
    layer_pass = LayerPass(acts=acts, grads=grads, target=torch.zeros(3, dtype=torch.long), logits=torch.zeros(3, 2))
    ours = GradCAMPlusPlus(_TinyCNN(), "conv").channel_weights(layer_pass)
    reference = _grad_cam_plus_plus_weights(acts.numpy(), grads.numpy())
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6, atol=1e-6)


def test_gradcam_plus_plus_weights_match_the_formula_on_a_real_pass(gap_cnn, x8):
    layer_pass = run_layer_pass(gap_cnn, "relu2", x8, 2, needs_gradients=True)
    assert layer_pass.grads is not None
    ours = GradCAMPlusPlus(gap_cnn, "relu2").channel_weights(layer_pass)
    reference = _grad_cam_plus_plus_weights(layer_pass.acts.numpy(), layer_pass.grads.numpy())
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6, atol=1e-6)
    maps = GradCAMPlusPlus(gap_cnn, "relu2").layer_map(x8, 2)
    expected = np.einsum("bc,bchw->bhw", reference, layer_pass.acts.numpy())
    np.testing.assert_allclose(maps.numpy(), expected, rtol=1e-5, atol=1e-6)


class _TinyCNN(nn.Module):
    """One conv layer and a head: only needed to construct the method."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 5, 3)
        self.fc = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


# -- the default layer and models returning dicts or tuples ----------------------------------------------------------


def test_cam_on_a_dict_model_uses_the_default_layer_after_the_relu():
    from tests.zoo import DictNet

    model = DictNet().eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    method = CAM(model)
    maps = method.attribute(x, 2)
    assert method.layer == "act"  # conv -> ReLU -> GAP -> Linear: the ReLU output, so CAM applies
    features = model(x)["features"]
    hand = torch.relu(torch.einsum("c,bchw->bhw", model.fc.weight[2].detach(), features.detach()))
    assert maps.flatten(1).amax(1).sum() > 0
    assert torch.allclose(maps, normalize_maps(upsample(hand, (8, 8))), atol=1e-6)
    # Grad-CAM on a GAP model is CAM divided by the spatial size (before normalisation).
    assert torch.allclose(GradCAM(model).layer_map(x, 2) * 64, CAM(model).layer_map(x, 2), atol=1e-5)


def test_grad_cam_on_a_resnet_default_layer_equals_a_hand_computation():
    from tests.zoo import TinyResNet

    model = TinyResNet().eval()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    method = GradCAM(model)
    maps = method.attribute(x, 3)
    assert method.layer == "layer2.1"
    seen = {}
    handle = model.layer2[1].register_forward_hook(lambda m, i, o: seen.update(act=o))
    logits = model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(logits[:, 3].sum(), seen["act"])
    hand = torch.relu((grad.mean(dim=(2, 3))[:, :, None, None] * seen["act"]).sum(dim=1)).detach()  # (batch, 8, 8)
    assert hand.flatten(1).amax(1).min() > 0
    assert torch.allclose(torch.relu(method.layer_map(x, 3)), hand, atol=1e-6, rtol=1e-4)
    assert torch.allclose(maps, normalize_maps(upsample(hand, (16, 16))), atol=1e-4)


def test_grad_cam_on_a_tuple_model_needs_output_and_equals_the_wrapper():
    from tests.zoo import SelectOutput, TupleNet

    model = TupleNet().eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with pytest.raises(UnsupportedModelError, match="ambiguous"):
        GradCAM(model).attribute(x)
    ours = GradCAM(model, output=0).attribute(x)
    assert torch.allclose(ours, GradCAM(SelectOutput(model, lambda out: out[0])).attribute(x), atol=1e-6)
    guided = GuidedGradCAM(model, output=0)
    assert guided.attribute(x).shape == (3, 8, 8) and guided.layer == "act"

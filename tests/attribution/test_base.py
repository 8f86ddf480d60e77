from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mechscope.attribution import GradCAM, GradientXInput, Saliency
from mechscope.attribution.base import LayerAttribution, normalize_maps, upsample
from mechscope.attribution.registry import METHODS, build_method
from mechscope.errors import ConfigError, DataError, LayerNameError, UnsupportedModelError
from tests.attribution.conftest import TwiceReLU, hooks_left

ALL = list(METHODS)


@pytest.mark.parametrize("name", ALL)
def test_attribute_contract_shape_dtype_finite(name, gap_cnn, x8):
    maps = build_method(name, gap_cnn).attribute(x8)
    assert maps.shape == (6, 8, 8)
    assert maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert maps.abs().amax(dim=(1, 2)).min() > 0  # every image gets a non-trivial map


@pytest.mark.parametrize("name", ALL)
def test_attribute_contract_batch_independence(name, gap_cnn, x8):
    method = build_method(name, gap_cnn)
    together = method.attribute(x8)
    alone = torch.cat([method.attribute(x8[i : i + 1]) for i in range(x8.shape[0])])
    scale = together.abs().amax()
    assert (together - alone).abs().max() <= 1e-5 * scale


@pytest.mark.parametrize("name", ALL)
def test_attribute_leaves_inputs_model_and_hooks_untouched(name, gap_cnn, x8):
    before = {k: v.clone() for k, v in gap_cnn.state_dict().items()}
    x_copy = x8.clone()
    gap_cnn.train()
    build_method(name, gap_cnn).attribute(x8)
    assert torch.equal(x8, x_copy) and not x8.requires_grad
    assert gap_cnn.training  # mode restored
    assert all(p.grad is None for p in gap_cnn.parameters())  # no .grad side effect
    assert all(torch.equal(v, before[k]) for k, v in gap_cnn.state_dict().items())
    assert hooks_left(gap_cnn) == 0


@pytest.mark.parametrize("name", ALL)
def test_attribute_no_hook_left_after_exception(name, exploding_cnn, x8):
    method = build_method(name, exploding_cnn)
    with pytest.raises(RuntimeError, match="boom"):
        method.attribute(x8, target=0)
    assert hooks_left(exploding_cnn) == 0
    assert torch.is_grad_enabled()  # the layer pass switches autograd off and on; it must be restored


@pytest.mark.parametrize("name", ALL)
def test_attribute_works_inside_no_grad(name, gap_cnn, x8):
    expected = build_method(name, gap_cnn).attribute(x8)
    with torch.no_grad():
        inside = build_method(name, gap_cnn).attribute(x8)
    assert torch.allclose(inside, expected, atol=1e-6)
    assert torch.is_grad_enabled()


def test_attribute_return_numpy_gives_array(gap_cnn, x8):
    maps = GradCAM(gap_cnn).attribute(x8, return_numpy=True)
    assert isinstance(maps, np.ndarray) and maps.shape == (6, 8, 8) and maps.dtype == np.float32


def test_attribute_explicit_target_differs_from_predicted(gap_cnn, x8):
    predicted = gap_cnn(x8).argmax(dim=1)
    other = (predicted + 1) % 10
    method = Saliency(gap_cnn)
    assert torch.equal(method.attribute(x8), method.attribute(x8, predicted))
    assert not torch.allclose(method.attribute(x8), method.attribute(x8, other))


@pytest.mark.parametrize("bad", [torch.rand(8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long), torch.rand(0, 1, 8, 8)])
def test_attribute_rejects_non_image_batches(bad, gap_cnn):
    with pytest.raises(DataError, match=r"\(batch, channel, height, width\)"):
        Saliency(gap_cnn).attribute(bad)


def test_attribute_rejects_arrays_with_a_hint(gap_cnn):
    with pytest.raises(DataError, match="torch.as_tensor"):
        Saliency(gap_cnn).attribute(np.zeros((1, 1, 8, 8)))  # type: ignore[arg-type]


def test_layer_attribution_default_layer_is_found_on_first_call_and_kept(gap_cnn, small_conv_net, x8):
    method = GradCAM(small_conv_net)
    assert method.layer is None
    method.attribute(x8)
    assert method.layer == "features.3"  # the last ReLU, not the conv before it
    assert GradCAM(gap_cnn).resolved_layer(x8) == "relu3"
    with pytest.raises(UnsupportedModelError, match="pass the layer explicitly"):
        GradCAM(nn.Sequential(nn.Flatten(), nn.Linear(64, 2))).attribute(x8)


def test_layer_attribution_unknown_layer_lists_close_matches(gap_cnn):
    with pytest.raises(LayerNameError, match="Did you mean 'relu3'"):
        GradCAM(gap_cnn, "relu33")


def test_layer_attribution_rejects_non_spatial_layer(gap_cnn, x8):
    with pytest.raises(UnsupportedModelError, match="conv layer with output"):
        GradCAM(gap_cnn, "fc").attribute(x8)


def test_layer_attribution_rejects_layer_that_runs_twice(x8):
    with pytest.raises(UnsupportedModelError, match="ran 2 times"):
        GradCAM(TwiceReLU(), "act").attribute(x8)


def test_layer_attribution_subclass_must_define_channel_weights(gap_cnn, x8):
    with pytest.raises(NotImplementedError, match="channel_weights"):
        LayerAttribution(gap_cnn).attribute(x8)


def test_with_model_rebinds_a_copy(gap_cnn, dense_cnn, x8):
    method = GradCAM(gap_cnn, output=torch.nn.Identity())
    method.resolved_layer(x8)
    rebound = method.with_model(dense_cnn)
    assert rebound.model is dense_cnn and method.model is gap_cnn and rebound.layer == "relu3"
    assert rebound.output is method.output


def test_build_method_unknown_name_suggests(gap_cnn):
    with pytest.raises(ConfigError, match="Did you mean 'grad-cam'"):
        build_method("gradcam", gap_cnn)


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (13, 7)])
@pytest.mark.parametrize("shape", [(2, 2), (7, 7), (3, 5)])
def test_upsample_matches_bilinear_interpolate(shape, size):
    maps = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    assert (upsample(maps, size) - expected).abs().max() <= 1e-6


def test_normalize_maps_peak_one_and_zero_maps_unchanged():
    maps = torch.stack([torch.full((3, 3), 2.0), torch.zeros(3, 3)])
    maps[0, 0, 0] = 4.0
    out = normalize_maps(maps)
    assert out[0].max() == 1.0 and out[0, 1, 1] == 0.5
    assert torch.equal(out[1], torch.zeros(3, 3))


@pytest.mark.gpu
@pytest.mark.parametrize("name", ALL)
def test_attribute_on_cuda_matches_cpu(name, gap_cnn, x8, cuda):
    # The `cuda` fixture turns TF32 off: in TF32 (the default for convolutions on Ampere and
    # later) integrated gradients, a sum over 50 passes, drifted past this tolerance on an H200.
    expected = build_method(name, gap_cnn).attribute(x8)
    on_gpu = build_method(name, gap_cnn.to(cuda)).attribute(x8)  # inputs follow the model's device
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), expected, atol=1e-4 * float(expected.abs().max()))


@pytest.mark.parametrize("name", ALL)
def test_attribute_nan_inputs_raise_naming_the_index(name, gap_cnn, x8):
    x = x8.clone()
    x[4, 0, 6, 1] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: 1 of 384 \(1 nan\); the first is nan at index "
                       r"\(4, 0, 6, 1\)\. .*or pass check_finite=False"):
        build_method(name, gap_cnn).attribute(x)
    assert hooks_left(gap_cnn) == 0


def test_attribute_check_finite_false_computes_maps_with_nan(gap_cnn, x8):
    x = x8.clone()
    x[2, 0, 0, 0] = float("nan")
    maps = GradientXInput(gap_cnn).attribute(x, target=0, check_finite=False)
    assert maps[2, 0, 0].isnan()
    torch.testing.assert_close(maps[[0, 1]], GradientXInput(gap_cnn).attribute(x8[[0, 1]], target=0))


def test_layer_map_checks_inputs_too(gap_cnn, x8):
    x = x8.clone()
    x[0, 0, 0, 0] = float("inf")
    with pytest.raises(DataError, match=r"the first is inf at index \(0, 0, 0, 0\)"):
        GradCAM(gap_cnn).layer_map(x)
    assert GradCAM(gap_cnn).layer_map(x, check_finite=False).shape[0] == 6


@pytest.mark.parametrize("name", ALL)
def test_attribute_float64_inputs_give_a_clear_error(name, gap_cnn, x8):
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32; convert with "
                       r"x\.float\(\) \(or model\.double\(\)\)"):
        build_method(name, gap_cnn).attribute(x8.double())
    assert hooks_left(gap_cnn) == 0


@pytest.mark.parametrize("name", ["saliency", "grad-cam"])
def test_attribute_residual_cnn_with_in_place_relus(name, residual_cnn, images):
    method = build_method(name, residual_cnn)
    assert method.attribute(images).isfinite().all()
    bad = images.clone()
    bad[3, 0, 7, 7] = float("-inf")
    with pytest.raises(DataError, match=r"the first is -inf at index \(3, 0, 7, 7\)"):
        method.attribute(bad)

from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.attribution import GradientXInput, GuidedBackprop, IntegratedGradients, Saliency, guided_relus
from mechscope.errors import ConfigError, DataError, UnsupportedModelError
from tests.attribution.conftest import hooks_left


class LinearClassifier(nn.Module):
    """logits = W flatten(x) + b with hand-set W: every gradient is a row of W."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * 3 * 3, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.linspace(-1.0, 1.0, 36).view(2, 18))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class TinyReLUNet(nn.Module):
    """4 inputs -> Linear(3) -> ReLU -> Linear(2), hand-set weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3, bias=False)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, -1.0, 0.5, 0.0], [0.5, 1.0, -1.0, 1.0], [-1.0, 0.5, 1.0, 1.0]]))
            self.fc2.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def _images(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_saliency_linear_model_is_max_abs_weight_over_channels():
    model, x = LinearClassifier(), _images(3, 2, 3, 3)
    maps = Saliency(model).attribute(x, target=1)
    expected = model.fc.weight[1].view(2, 3, 3).abs().amax(dim=0)
    assert torch.allclose(maps, expected.expand(3, 3, 3), atol=1e-7)


def test_gradient_x_input_linear_model_is_weight_times_input():
    model, x = LinearClassifier(), _images(3, 2, 3, 3)
    maps = GradientXInput(model).attribute(x, target=0)
    expected = (model.fc.weight[0].view(1, 2, 3, 3) * x).sum(dim=1)
    assert torch.allclose(maps, expected, atol=1e-6)


def test_integrated_gradients_linear_model_equals_gradient_x_input():
    model, x = LinearClassifier(), _images(3, 2, 3, 3)
    ig = IntegratedGradients(model, steps=4).attribute(x, target=0)
    assert torch.allclose(ig, GradientXInput(model).attribute(x, target=0), atol=1e-6)


def test_integrated_gradients_completeness_on_a_relu_cnn(gap_cnn, x8):
    # Sum of attributions = logit(x) - logit(baseline), up to the Riemann error of the path integral.
    target = gap_cnn(x8).argmax(dim=1)
    ig = IntegratedGradients(gap_cnn, steps=256).attribute(x8, target)
    logits = gap_cnn(x8).gather(1, target[:, None])[:, 0]
    base = gap_cnn(torch.zeros_like(x8)).gather(1, target[:, None])[:, 0]
    gap = (logits - base).detach()
    assert (ig.sum(dim=(1, 2)) - gap).abs().max() <= 0.01 * gap.abs().max()


def test_integrated_gradients_chunking_does_not_change_result(gap_cnn, x8):
    whole = IntegratedGradients(gap_cnn, steps=10).attribute(x8)
    chunked = IntegratedGradients(gap_cnn, steps=10, internal_batch_size=7).attribute(x8)
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_integrated_gradients_baseline_image_is_used(gap_cnn, x8):
    same = IntegratedGradients(gap_cnn, baseline=x8[0]).attribute(x8[:1])
    assert torch.equal(same, torch.zeros_like(same))  # x == baseline: nothing to attribute


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"internal_batch_size": -1}, {"steps": 2.5}])
def test_integrated_gradients_bad_settings_raise(gap_cnn, kwargs):
    with pytest.raises(ConfigError, match="positive integer"):
        IntegratedGradients(gap_cnn, **kwargs)


def test_integrated_gradients_baseline_shape_mismatch_raises(gap_cnn, x8):
    with pytest.raises(DataError, match="does not broadcast"):
        IntegratedGradients(gap_cnn, baseline=torch.zeros(3, 8, 8)).attribute(x8)


def test_guided_backprop_matches_hand_computation():
    model = TinyReLUNet()
    x = torch.tensor([[0.5, 0.2, 0.9, 0.4]]).view(1, 1, 2, 2)
    w1, w2 = model.fc1.weight, model.fc2.weight
    hidden = w1 @ x.flatten()
    for target in (0, 1):
        upstream = w2[target] * (hidden > 0)  # plain ReLU backward
        guided = w1.T @ upstream.clamp(min=0)  # guided: only positive gradients pass the ReLU
        maps = GuidedBackprop(model).attribute(x, target=target)
        assert torch.allclose(maps.flatten(), guided.detach(), atol=1e-6)


def test_guided_backprop_differs_from_gradient_and_leaves_no_hook(gap_cnn, x8):
    guided = GuidedBackprop(gap_cnn).attribute(x8)
    plain = GradientXInput(gap_cnn).input_scores(x8, None) / x8  # the plain gradient
    assert not torch.allclose(guided, plain.sum(dim=1), atol=1e-4)
    assert hooks_left(gap_cnn) == 0


def test_guided_relus_removes_hooks_when_the_block_raises(gap_cnn):
    with pytest.raises(RuntimeError, match="inside"):
        with guided_relus(gap_cnn) as names:
            assert names == ["relu1", "relu2", "relu3"]
            assert hooks_left(gap_cnn) == 3
            raise RuntimeError("inside")
    assert hooks_left(gap_cnn) == 0


def test_guided_backprop_needs_relu_modules():
    with pytest.raises(UnsupportedModelError, match="has none"):
        GuidedBackprop(LinearClassifier()).attribute(_images(1, 2, 3, 3))


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")
@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (Saliency, "Saliency", {"abs": True}),
        (IntegratedGradients, "IntegratedGradients", {"method": "riemann_middle", "n_steps": 32}),
        (GuidedBackprop, "GuidedBackprop", {}),
    ],
)
def test_gradient_methods_agree_with_captum(ours, theirs, kwargs, gap_cnn, x8):
    captum_attr = pytest.importorskip("captum.attr")
    target = gap_cnn(x8).argmax(dim=1)
    inputs = x8.clone().requires_grad_(True)
    reference = getattr(captum_attr, theirs)(gap_cnn).attribute(inputs, target=target, **kwargs)[:, 0]
    maps = ours(gap_cnn).attribute(x8, target)
    assert torch.allclose(maps, reference.detach(), atol=1e-6, rtol=1e-4)

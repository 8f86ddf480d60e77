from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.attribution import GradientXInput, GuidedBackprop, IntegratedGradients, Saliency
from mechscope.attribution.gradients import guided_relus
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


class OneLayerNet(nn.Module):
    """4 inputs -> Linear(3) -> `act` -> Linear(2), hand-set weights: hidden (2.5, 12, -3.5) for x = (2, 1, 3, 1)."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3, bias=False)
        self.act = act
        self.fc2 = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, -1.0, 0.5, 0.0], [3.0, 2.0, 1.0, 1.0], [-1.0, 0.5, -1.0, 1.0]]))
            self.fc2.weight.copy_(torch.tensor([[-1.0, 2.0, 0.5], [1.0, 1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))


ONE_LAYER_X = torch.tensor([[2.0, 1.0, 3.0, 1.0]]).view(1, 1, 2, 2)


def test_guided_backprop_relu6_matches_hand_computation():
    model = OneLayerNet(nn.ReLU6())
    w1, w2 = model.fc1.weight.detach(), model.fc2.weight.detach()
    hidden = w1 @ ONE_LAYER_X.flatten()
    assert hidden.tolist() == [2.5, 12.0, -3.5]  # inside (0, 6), clipped at 6, negative
    inside = ((hidden > 0) & (hidden < 6)).float()  # only hidden unit 0 passes a gradient
    for target in (0, 1):
        guided = w1.T @ (inside * w2[target].clamp(min=0))
        maps = GuidedBackprop(model).attribute(ONE_LAYER_X, target=target)
        assert torch.allclose(maps.flatten(), guided, atol=1e-6)
    assert GuidedBackprop(model).attribute(ONE_LAYER_X, target=0).abs().max() == 0  # w2[0, 0] < 0: blocked


def test_guided_backprop_leaky_relu_passes_nothing_through_the_leak():
    model = OneLayerNet(nn.LeakyReLU(0.1))
    w1, w2 = model.fc1.weight.detach(), model.fc2.weight.detach()
    positive = ((w1 @ ONE_LAYER_X.flatten()) > 0).float()  # units 0 and 1
    guided = w1.T @ (positive * w2[1].clamp(min=0))
    assert torch.allclose(GuidedBackprop(model).attribute(ONE_LAYER_X, target=1).flatten(), guided, atol=1e-6)


@pytest.mark.parametrize("act", [nn.GELU(), nn.SiLU(), nn.Hardswish(), nn.ELU()])
def test_guided_backprop_smooth_activation_is_local_gradient_times_positive_gradient(act):
    model = OneLayerNet(act)
    w1, w2 = model.fc1.weight.detach(), model.fc2.weight.detach()
    hidden = (w1 @ ONE_LAYER_X.flatten()).requires_grad_()
    (local,) = torch.autograd.grad(act(hidden).sum(), hidden)  # f'(x), elementwise
    guided = w1.T @ (local * w2[1].clamp(min=0))
    assert torch.allclose(GuidedBackprop(model).attribute(ONE_LAYER_X, target=1).flatten(), guided, atol=1e-6)


def test_guided_backprop_runs_on_relu6_and_hardswish_mobilenet():
    from tests.zoo import TinyMobileNet

    model, x = TinyMobileNet().eval(), _images(3, 3, 8, 8)
    with guided_relus(model) as names:
        assert names == ["stem.2", "block.2", "block.5"]
    maps = GuidedBackprop(model).attribute(x)
    assert maps.shape == (3, 8, 8) and torch.isfinite(maps).all() and maps.abs().sum() > 0
    plain = GradientXInput(model).input_scores(x, None) / x  # the plain gradient
    assert not torch.allclose(maps, plain.sum(dim=1), atol=1e-4)
    assert hooks_left(model) == 0


def test_guided_backprop_guides_hugging_face_gelu_modules():
    from tests.zoo import tiny_vit

    model = tiny_vit()
    with guided_relus(model) as names:
        assert len(names) == 2 and all(n.endswith("_fn") for n in names)  # one GELU module per layer
    maps = GuidedBackprop(model).attribute(_images(2, 3, 8, 8))
    assert maps.shape == (2, 8, 8) and torch.isfinite(maps).all()
    assert hooks_left(model) == 0


def test_guided_backprop_refuses_an_activation_without_rule_naming_it():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(UnsupportedModelError, match=r"no rule .* found Tanh at '1'; it guides ReLU, ReLU6"):
        GuidedBackprop(model).attribute(_images(1, 1, 3, 3))
    assert hooks_left(model) == 0


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


# -- models returning a dict, a tuple or a Hugging Face ModelOutput --------------------------------------------------


@pytest.mark.parametrize("method", [Saliency, GradientXInput, GuidedBackprop])
def test_gradient_methods_on_a_dict_model_equal_them_on_a_logits_wrapper_exactly(method):
    from tests.zoo import DictNet, SelectOutput

    model = DictNet().eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    wrapped = SelectOutput(model, lambda out: out["logits"])
    assert torch.equal(method(model).attribute(x), method(wrapped).attribute(x))
    assert torch.equal(method(model, output="logits").attribute(x, 1), method(wrapped).attribute(x, 1))


def test_saliency_on_a_dict_model_agrees_with_captum_on_the_wrapper():
    captum_attr = pytest.importorskip("captum.attr")
    from tests.zoo import DictNet, SelectOutput

    model = DictNet().eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    wrapped = SelectOutput(model, lambda out: out["logits"])
    target = wrapped(x).argmax(dim=1)
    reference = captum_attr.Saliency(wrapped).attribute(x.clone().requires_grad_(True), target=target)[:, 0]
    assert torch.allclose(Saliency(model).attribute(x), reference.detach(), atol=1e-6, rtol=1e-5)


def test_integrated_gradients_on_a_tuple_model_needs_output_and_then_equals_the_wrapper():
    from tests.zoo import SelectOutput, TupleNet

    model = TupleNet().eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with pytest.raises(UnsupportedModelError, match=r"ambiguous.*output=0"):
        IntegratedGradients(model, steps=4).attribute(x)
    ours = IntegratedGradients(model, steps=4, output=0).attribute(x)
    assert torch.equal(ours, IntegratedGradients(SelectOutput(model, lambda out: out[0]), steps=4).attribute(x))


def test_saliency_on_a_hugging_face_vit_reads_its_model_output():
    from tests.zoo import SelectOutput, tiny_vit

    model = tiny_vit()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    maps = Saliency(model).attribute(x, 2)
    assert maps.shape == (2, 8, 8) and maps.abs().sum() > 0
    assert torch.equal(maps, Saliency(SelectOutput(model, lambda out: out.logits)).attribute(x, 2))

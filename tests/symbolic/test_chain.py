from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mechscope.errors import DataError, UnsupportedModelError
from mechscope.symbolic.chain import ActivationStep, AffineStep, trace_chain


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


class Reordered(nn.Module):
    """Layers registered in another order than forward runs them."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(4, 1)
        self.act = nn.LeakyReLU(0.2)
        self.inp = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.inp(x)))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)) + x)


class FunctionalReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def test_trace_chain_sequential_gives_affine_activation_affine(two_layer_net):
    chain = trace_chain(two_layer_net, torch.randn(4, 2))
    kinds = [type(step) for step in chain.steps]
    assert kinds == [AffineStep, ActivationStep, AffineStep]
    assert chain.n_features == 2 and chain.n_outputs == 2
    assert chain.unit_names == ("act:0", "act:1", "act:2")
    assert chain.steps[0].weight.dtype == torch.float64


def test_trace_chain_follows_forward_order_not_registration_order():
    torch.manual_seed(0)
    model = Reordered()
    chain = trace_chain(model, torch.randn(5, 3))
    assert [step.name for step in chain.steps] == ["inp", "act", "out"]
    assert chain.steps[1].negative_slope == pytest.approx(0.2)
    x = torch.randn(50, 3)
    out, _ = chain.forward(x)
    assert torch.allclose(out[:, 0], model(x).detach()[:, 0].double(), atol=1e-6)


def test_trace_chain_folds_batchnorm_into_previous_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)).eval()
    model[1].running_mean.normal_()
    model[1].running_var.uniform_(0.5, 2.0)
    model[1].weight.data.uniform_(0.5, 1.5)
    chain = trace_chain(model, torch.randn(4, 3))
    assert [step.name for step in chain.steps] == ["0+1", "2", "4"]
    x = torch.randn(200, 3)
    out, _ = chain.forward(x)
    assert torch.allclose(out, model(x).detach().double(), atol=1e-5)


def test_trace_chain_flattens_image_inputs():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.ReLU(), nn.Identity(), nn.Linear(3, 1))
    chain = trace_chain(model, torch.rand(2, 1, 4, 4))
    assert chain.n_features == 16
    assert [type(step) for step in chain.steps] == [AffineStep, ActivationStep, AffineStep]


def test_trace_chain_restores_mode_and_leaves_no_hooks(two_layer_net):
    two_layer_net.train()
    trace_chain(two_layer_net, torch.randn(3, 2))
    assert two_layer_net.training and _no_hooks(two_layer_net)


def test_trace_chain_tanh_raises_not_piecewise_linear():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(UnsupportedModelError, match=r"Layer '1' is Tanh, which is not piecewise linear.*linearize"):
        trace_chain(model, torch.randn(2, 2))
    assert _no_hooks(model)


@pytest.mark.parametrize("layer", [nn.Sigmoid(), nn.Softmax(dim=1)])
def test_trace_chain_smooth_activations_raise(layer):
    model = nn.Sequential(nn.Linear(2, 3), layer)
    with pytest.raises(UnsupportedModelError, match="not piecewise linear"):
        trace_chain(model, torch.randn(2, 2))


def test_trace_chain_unsupported_layer_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1))
    with pytest.raises(UnsupportedModelError, match="Layer '0' is Conv2d"):
        trace_chain(model, torch.rand(2, 1, 4, 4))


def test_trace_chain_residual_connection_raises():
    with pytest.raises(UnsupportedModelError, match="'fc2' .* not a plain chain"):
        trace_chain(Residual(), torch.randn(3, 3))


def test_trace_chain_functional_activation_raises():
    with pytest.raises(UnsupportedModelError, match="does not receive the previous layer's output"):
        trace_chain(FunctionalReLU(), torch.randn(3, 3))


def test_trace_chain_batchnorm_without_running_stats_raises():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.ReLU())
    with pytest.raises(UnsupportedModelError, match="track_running_stats=False"):
        trace_chain(model, torch.randn(4, 3))


def test_trace_chain_bad_example_raises(two_layer_net):
    with pytest.raises(DataError, match=r"example must be an input batch"):
        trace_chain(two_layer_net, torch.randn(2))


def test_trace_chain_nan_weights_name_the_layer(two_layer_net):
    with torch.no_grad():
        two_layer_net.fc2.weight[1, 2] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in the weights of layer 'fc2' \(weight\): 1 of 6 "
                       r"\(1 nan\); the first is nan at index \(1, 2\)\. The weights of layer 'fc2' are not finite"):
        trace_chain(two_layer_net, torch.rand(4, 2))


def test_trace_chain_nan_example_is_a_data_error_not_a_chain_error(two_layer_net):
    example = torch.rand(4, 2)
    example[3, 0] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in example: .*index \(3, 0\)"):
        trace_chain(two_layer_net, example)

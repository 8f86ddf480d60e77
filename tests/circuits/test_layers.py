from __future__ import annotations

import torch
from torch import nn

from mechscope.capture import default_layer
from mechscope.circuits.layers import (
    activation_after,
    conv_feeding,
    conv_layers,
    depth_layers,
    receptive_field,
)
from mechscope.models import DigitCNN, DigitCNNConfig


def test_depth_layers_digit_cnn_are_relus_in_order():
    model = DigitCNN(DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True))
    assert conv_layers(model) == ["conv1", "conv2", "conv3"]
    assert depth_layers(model) == ["relu1", "relu2", "relu3"]
    assert default_layer(model, torch.zeros(1, 1, 8, 8)) == "relu3"
    assert conv_feeding(model, "relu3") == "conv3"
    assert conv_feeding(model, "conv2") == "conv2"


def test_activation_after_skips_norm_and_falls_back_to_conv():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.GELU(), nn.Conv2d(2, 2, 3), nn.Flatten())
    assert activation_after(model, "0") == "2"
    assert activation_after(model, "3") == "3"
    # "3" flattened is the model's output, never its own explanation: the map before it is.
    assert default_layer(model, torch.zeros(1, 1, 8, 8)) == "2"


def test_receptive_field_digit_cnn_matches_hand_values():
    model = DigitCNN(DigitCNNConfig(channels=(8, 16, 32), pools=2))
    field = receptive_field(model, "relu3", (1, 28, 28), (32, 7, 7))
    assert field is not None
    assert (field.size, field.jump, field.start) == ((18, 18), (4, 4), (1.5, 1.5))
    assert receptive_field(model, "relu2", (1, 28, 28), (16, 14, 14)).size == (8, 8)
    assert receptive_field(model, "relu3", (1, 28, 28), (32, 6, 6)) is None  # wrong size -> no guess


def test_receptive_field_window_equals_gradient_support():
    # Linear layers with positive weights: the input gradient of one output position is non-zero
    # exactly on its receptive field.
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3, stride=2, dilation=1), nn.Identity()
    )
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
    x = torch.zeros(1, 1, 20, 20, requires_grad=True)
    out = model(x)
    field = receptive_field(model, "3", (1, 20, 20), tuple(out.shape[1:]))
    assert field is not None
    for i, j in [(0, 0), (1, 2), (3, 3)]:
        (grad,) = torch.autograd.grad(out[0, 0, i, j], x, retain_graph=True)
        rows, cols = grad[0, 0].nonzero(as_tuple=True)
        (r0, h), (c0, w) = field.window((i, j))
        assert (max(r0, 0), min(r0 + h, 20) - 1) == (int(rows.min()), int(rows.max()))
        assert (max(c0, 0), min(c0 + w, 20) - 1) == (int(cols.min()), int(cols.max()))


def test_receptive_field_unknown_module_gives_none():
    class Shift(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.roll(x, 1, dims=-1)

    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), Shift(), nn.Conv2d(1, 1, 3, padding=1))
    assert receptive_field(model, "2", (1, 8, 8), (1, 8, 8)) is None

"""Fixtures for feature visualisation: one small trained digit CNN and tiny hand-set models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.data import DataBundle, digits_data
from mechscope.featurevis import InputSpace
from mechscope.models import DigitCNN, DigitCNNConfig, TrainConfig, build_seeded, train

# scikit-learn's 8x8 digits: ~3 s of training on a shared 2-core machine, test accuracy ~0.93.
TRAIN = TrainConfig(epochs=3, batch_size=64, lr=1e-2, cosine=True)


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return digits_data("digits")


@pytest.fixture(scope="session")
def trained_cnn(digits: DataBundle) -> DigitCNN:
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(8, 16, 32)), seed=0)
    train(model, digits, TRAIN, progress=False)
    return model.eval()


@pytest.fixture
def cnn(trained_cnn: DigitCNN) -> DigitCNN:
    """A fresh copy per test, so no test can leak state into another."""
    copy = build_seeded(DigitCNN, trained_cnn.config, seed=0)
    copy.load_state_dict(trained_cnn.state_dict())
    return copy.eval()


@pytest.fixture(scope="session")
def space(digits: DataBundle) -> InputSpace:
    return InputSpace.from_data(digits.x_train)


class OneConv(nn.Module):
    """1x4x4 image -> 1x1 conv (weight 1, bias -0.8) -> ReLU -> mean: dead on a mid-grey image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.act = nn.ReLU()
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.fill_(-0.8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)).mean(dim=(2, 3))


@pytest.fixture
def one_conv() -> OneConv:
    return OneConv().eval()


@pytest.fixture
def hooks_left():
    """Count the forward hooks still registered anywhere in a model."""

    def count(model: nn.Module) -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    return count

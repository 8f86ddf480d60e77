"""Shared fixtures: tiny seeded models with hand-set weights."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each avoids oversubscription.
    torch.set_num_threads(1)


class TwoLayerNet(nn.Module):
    """2 -> 3 (ReLU) -> 2 with hand-set weights; every value is computable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
            self.fc1.bias.copy_(torch.tensor([0.0, -1.0, 0.5]))
            self.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0]]))
            self.fc2.bias.copy_(torch.tensor([0.1, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SmallConvNet(nn.Module):
    """1x8x8 -> conv(4) -> ReLU -> conv(6) -> ReLU -> GAP -> linear(3), seeded."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def two_layer_net() -> TwoLayerNet:
    return TwoLayerNet()


@pytest.fixture
def small_conv_net() -> SmallConvNet:
    return SmallConvNet()


@pytest.fixture
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(5, 1, 8, 8, generator=generator)

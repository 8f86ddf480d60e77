"""Fixtures for the circuits tests: a trained GAP DigitCNN, hand-set conv pairs, seeded small CNNs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.data import DataBundle, digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, TrainConfig, build_seeded, train

# Pinned (not the defaults) so shapes in the tests stay fixed: relu1 8x8x8, relu2 16x4x4, relu3 32x2x2.
SMALL_GAP = DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True)
SMALL_DENSE = DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=False)


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return digits_data("digits")


@pytest.fixture(scope="module")
def trained_gap_cnn(digits: DataBundle) -> DigitCNN:
    """A small DigitCNN(gap=True), (8, 16, 32) channels, on sklearn's 8x8 digits: trained in a few seconds."""
    model = build_seeded(DigitCNN, SMALL_GAP, seed=0)
    result = train(model, digits, TrainConfig(epochs=15, batch_size=32, lr=3e-3, cosine=True), progress=False)
    assert result.metrics["test_accuracy"] > 0.85
    return model.eval()


@pytest.fixture
def gap_cnn() -> DigitCNN:
    return build_seeded(DigitCNN, SMALL_GAP, seed=1).eval()


@pytest.fixture
def dense_head_cnn() -> DigitCNN:
    return build_seeded(DigitCNN, SMALL_DENSE, seed=2).eval()


class ConvPair(nn.Module):
    """conv_a (1 -> 2) -> ReLU -> conv_b (2 -> 3) with hand-set 2x2 kernels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(1, 2, 2, bias=False)
        self.act = nn.ReLU()
        self.conv_b = nn.Conv2d(2, 3, 2, bias=False)
        with torch.no_grad():
            self.conv_a.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]]))
            self.conv_b.weight.copy_(
                torch.tensor(
                    [
                        [[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]],  # out 0 reads only in 0
                        [[[1.0, -1.0], [1.0, -1.0]], [[3.0, 0.0], [0.0, -4.0]]],  # out 1: signed sum 0 and -1
                        [[[-1.0, -1.0], [-1.0, -1.0]], [[0.0, 1.0], [0.0, 0.0]]],  # out 2: inhibited by in 0
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.act(self.conv_a(x)))


@pytest.fixture
def conv_pair() -> ConvPair:
    return ConvPair()

"""Fixtures for attribution tests: small seeded CNNs, image batches and one trained digit classifier."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from mechscope.data import DataBundle, digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, TrainConfig, build_seeded, train
from mechscope.devices import threads

# Architectures are spelled out so the tests do not move with DigitCNNConfig's defaults.
SMALL = {"image_size": 8, "channels": (8, 16, 32), "pools": 2}  # last block relu3, 2x2
TRAINED = {"image_size": 8, "channels": (16, 32, 64, 64), "pools": 1, "gap": False}  # last block relu4, 4x4
# Measured on a busy 2-core machine (one thread): ~8 s of training, test accuracy 0.984.
TRAIN = TrainConfig(epochs=6, batch_size=32, lr=4e-3, cosine=True)


class TwiceReLU(nn.Module):
    """Conv -> the same ReLU module twice -> GAP -> linear: a layer that runs twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.act(self.conv(x))).mean(dim=(2, 3)))


class Exploding(DigitCNN):
    """A GAP DigitCNN that raises after its forward pass, to test hook release on errors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        super().forward(x)
        raise RuntimeError("boom")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the previous count.

    These models are tiny: a second thread only adds contention on a shared 2-core machine
    (tests ran 5x slower with two), and one thread makes the trained fixture's weights, and
    so the measured numbers, the same in single-process and `pytest -n 2` runs.
    """
    with threads(1):
        yield


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture
def gap_cnn() -> DigitCNN:
    return build_seeded(DigitCNN, DigitCNNConfig(**SMALL, gap=True), seed=0).eval()


@pytest.fixture
def dense_cnn() -> DigitCNN:
    return build_seeded(DigitCNN, DigitCNNConfig(**SMALL, gap=False), seed=0).eval()


@pytest.fixture
def x8() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.rand(6, 1, 8, 8, generator=generator)


@pytest.fixture
def exploding_cnn(gap_cnn: DigitCNN) -> Exploding:
    model = Exploding(gap_cnn.config)
    model.load_state_dict(gap_cnn.state_dict())
    return model.eval()


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return digits_data("digits")


@pytest.fixture(scope="session")
def trained_cnn(digits: DataBundle) -> DigitCNN:
    """A dense-head DigitCNN trained on 8x8 digits (CAM exactness is tested on untrained GAP models)."""
    model = build_seeded(DigitCNN, DigitCNNConfig(**TRAINED), seed=0)
    with one_thread():
        result = train(model, digits, TRAIN, progress=False)
    if result.metrics["test_accuracy"] < 0.95:
        pytest.fail(f"fixture model trained to only {result.metrics['test_accuracy']:.3f} test accuracy")
    return model.eval()


def hooks_left(model: nn.Module) -> int:
    """Number of forward/backward hooks registered anywhere in `model`."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )

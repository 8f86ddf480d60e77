"""Shared fixtures: tiny seeded models with hand-set weights."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import torch
from torch import nn

# Commands that keep finished tasks by default write them to a scratch folder, never the user's cache.
_SCRATCH_CACHE = os.path.join(tempfile.gettempdir(), f"mechscope-test-cache-{os.getpid()}")
os.environ.setdefault("MECHSCOPE_CACHE", _SCRATCH_CACHE)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each avoids oversubscription.
    torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one); use the `cuda` fixture")
    config.addinivalue_line("markers", "ray: starts Ray; these tests share one pytest worker, so two never run at once")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # with `-n 2 --dist loadgroup` (scripts/test.sh) the Ray tests run one after another
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("MECHSCOPE_CACHE") == _SCRATCH_CACHE:  # the process that made the scratch cache removes it
        shutil.rmtree(_SCRATCH_CACHE, ignore_errors=True)


@pytest.fixture
def cuda() -> Iterator[torch.device]:
    """The first CUDA device, with TF32 off for the test (the flags come back afterwards); skips without CUDA.

    Ampere and later GPUs run float32 convolutions in TF32 by default (and matmuls where
    allowed): a 10-bit mantissa, about 1e-3 relative error per operation, which an analysis
    that sums many passes (integrated gradients, training) carries into its result. With TF32
    off, float32 on the GPU agrees with the CPU to about 1e-5 relative.
    """
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield torch.device("cuda")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


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


class ResidualCNN(nn.Module):
    """1x8x8 -> conv -> in-place ReLU -> residual block (`out += identity`) -> GAP -> linear(3), seeded."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.relu1(self.conv1(x))
        out = self.conv2(identity)
        out += identity
        return self.fc(self.relu2(out).mean(dim=(2, 3)))


class DictOutputNet(nn.Module):
    """2 -> 3 (ReLU) -> 2, returning {"logits": ..., "hidden": ...} like a Hugging Face ModelOutput."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(2, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.act(self.fc1(x))
        return {"logits": self.fc2(hidden), "hidden": hidden}


class GRUNet(nn.Module):
    """(batch, pos, 3) sequences -> GRU(4) -> linear(2) on the last position, seeded."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


class TokenNet(nn.Module):
    """Integer token ids (batch, pos) -> Embedding(5, 3) -> mean over positions -> linear(2), seeded."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))


@pytest.fixture
def residual_cnn() -> ResidualCNN:
    return ResidualCNN().eval()


@pytest.fixture
def dict_output_net() -> DictOutputNet:
    return DictOutputNet()


@pytest.fixture
def gru_net() -> GRUNet:
    return GRUNet().eval()


@pytest.fixture
def token_net() -> TokenNet:
    return TokenNet()

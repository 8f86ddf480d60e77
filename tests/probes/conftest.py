"""Small seeded data shared by the probe tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from mechscope.devices import threads


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Run each probe test module on one thread, then restore the setting.

    Probe tensors are tiny: a thread pool only adds overhead, and on a shared machine whose cores
    are busy its spinning threads slow these tests down many times over.
    """
    with threads(1):
        yield


@pytest.fixture
def blobs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Activation images (120, 3, 4): class k adds +2 to unit k of every row; labels a (3 classes), b (2)."""
    g = torch.Generator().manual_seed(0)
    a = torch.arange(120) % 3
    b = (torch.arange(120) // 3) % 2
    x = 0.1 * torch.randn(120, 3, 4, generator=g)
    x[torch.arange(120), :, a] += 2.0
    x[:, 1, 3] += 2.0 * b
    return x, a, b


@pytest.fixture(scope="module")
def mod2() -> tuple[torch.nn.Module, object]:
    """A ModularMLP trained on (a + b) mod 2 (400 pairs), in eval mode, with its data."""
    from mechscope.data import modular_data
    from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded, train

    data = modular_data(2, n_train=400, n_test=400, seed=0)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2), seed=0)
    train(model, data, progress=False)
    return model.eval(), data

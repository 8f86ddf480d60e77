from __future__ import annotations

import torch

from mechscope.circuits import ablate
from mechscope.report.units import unit_ablation
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from tests.report.conftest import EvilNet


def test_unit_ablation_matches_ablating_each_channel_alone():
    model = EvilNet().eval()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    batched = unit_ablation(model, x, "relu2", [0, 2, 5], batch=10)  # 2 replicas per pass: chunks of 2 and 1
    for row, channel in enumerate([0, 2, 5]):
        with torch.no_grad(), ablate(model, "relu2", [channel]):
            expected = model(x)
        torch.testing.assert_close(batched[row], expected)
    assert not any(m._forward_hooks for m in model.modules())


def test_unit_ablation_works_on_dense_blocks():
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=4, hidden=4), 0).eval()
    x = torch.eye(6)[[0, 1, 2]] + torch.eye(6)[[3, 4, 5]]
    out = unit_ablation(model, x, "hidden.1", list(range(4)))
    with torch.no_grad(), ablate(model, "hidden.1", [3]):
        torch.testing.assert_close(out[3], model(x))


class _SkipNet(torch.nn.Module):
    """conv -> act -> conv, plus a skip connection from before `act`: the expand shortcut cannot apply."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        return self.fc((self.conv2(self.act(h)) + h).mean(dim=(2, 3)))


def test_unit_ablation_falls_back_when_later_layers_read_earlier_ones():
    model = _SkipNet().eval()
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    out = unit_ablation(model, x, "act", [0, 1, 2])
    for channel in range(3):
        with torch.no_grad(), ablate(model, "act", [channel]):
            torch.testing.assert_close(out[channel], model(x))

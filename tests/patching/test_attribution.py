"""Attribution patching equals exact patching where the model is linear, and says how far it is elsewhere."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope.patching.activation import activation_patching
from mechscope.patching.attribution import attribution_patching, compare
from mechscope.patching.metrics import logit_diff, probability
from tests.zoo import TinyResNet


class Linear2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:  # (batch, pos, 4) -> (batch, 3)
        return self.b(self.a(x)).sum(dim=1)


def test_equals_exact_patching_on_a_linear_model() -> None:
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randn(4, 5, 4, generator=g), torch.randn(4, 5, 4, generator=g)
    model = Linear2()
    for along in ("pos", "unit"):
        exact = activation_patching(model, clean, corrupt, ["a", "b"], logit_diff(0, 2), along=along)
        approx = attribution_patching(model, clean, corrupt, ["a", "b"], logit_diff(0, 2), along=along)
        assert approx.method == "attribution"
        assert compare(exact, approx).max_error < 1e-5


def test_reports_its_error_on_a_nonlinear_model() -> None:
    model = TinyResNet().eval()
    g = torch.Generator().manual_seed(3)
    clean, corrupt = torch.randn(2, 1, 16, 16, generator=g), torch.randn(2, 1, 16, 16, generator=g)
    exact = activation_patching(model, clean, corrupt, ["layer1.0.relu:1"], probability(0), along="unit")
    approx = attribution_patching(model, clean, corrupt, ["layer1.0.relu:1"], probability(0), along="unit")
    comparison = compare(exact, approx)
    assert comparison.error.shape == exact.values.shape
    # the estimate is informative but not exact through softmax and ReLUs
    assert 0 < comparison.max_error
    manual = approx.values - exact.values
    assert torch.equal(comparison.error, manual)

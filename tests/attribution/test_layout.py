from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.attribution import GradCAM, Saliency
from mechscope.attribution._layout import _LAYOUT_SENSITIVE, channels_last_call
from mechscope.capture import capture
from tests.attribution.conftest import hooks_left


class ViewHead(nn.Module):
    """conv -> ReLU -> `.view()` -> linear: needs the default (contiguous) layout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def test_channels_last_call_converts_conv_outputs_and_keeps_values(gap_cnn, x8):
    with capture(gap_cnn, ["relu1", "relu3"]) as store:
        fast = channels_last_call(gap_cnn, x8, lambda: gap_cnn(x8))
    assert store.act("relu1").is_contiguous(memory_format=torch.channels_last)
    assert not store.act("relu1").is_contiguous()
    assert torch.allclose(fast, gap_cnn(x8), atol=1e-6)
    assert hooks_left(gap_cnn) == 0


def test_layout_sensitive_model_is_rerun_as_is_and_remembered(x8):
    model = ViewHead().eval()
    with pytest.raises(RuntimeError, match="view"):  # the model cannot run in channels-last layout
        h = model.act(model.conv(x8)).contiguous(memory_format=torch.channels_last)
        h.view(h.shape[0], -1)
    saliency = Saliency(model).attribute(x8, target=1)
    x = x8.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    assert torch.allclose(saliency, grad.abs()[:, 0], atol=1e-7)
    assert model in _LAYOUT_SENSITIVE
    assert GradCAM(model, "act").attribute(x8).shape == (6, 8, 8)
    assert hooks_left(model) == 0


def test_genuine_errors_propagate_without_marking_the_model(gap_cnn, x8):
    def broken() -> torch.Tensor:
        raise RuntimeError("genuine failure")

    with pytest.raises(RuntimeError, match="genuine failure"):
        channels_last_call(gap_cnn, x8, broken)
    assert gap_cnn not in _LAYOUT_SENSITIVE

"""Path patching isolates one path of a two-path model."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError
from mechscope.patching.activation import activation_patching
from mechscope.patching.metrics import logit_diff
from mechscope.patching.path import path_patching


class TwoPaths(nn.Module):
    """sender -> receiver directly, and sender -> mid -> (receiver and the output)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sender = nn.Identity()
        self.mid = nn.Linear(3, 3)
        self.receiver = nn.Identity()
        self.head = nn.Linear(3, 2, bias=False)
        self.side = nn.Linear(3, 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (batch, pos, 3) -> (batch, 2)
        s = self.sender(x)
        m = self.mid(s)
        r = self.receiver(s + m)
        return self.head(r[:, 0]) + self.side(m[:, 0])


def test_frozen_mid_leaves_only_the_direct_path() -> None:
    model = TwoPaths().eval()
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randn(3, 2, 3, generator=g), torch.randn(3, 2, 3, generator=g)
    metric = logit_diff(0, 1)
    result = path_patching(model, clean, corrupt, metric, sender="sender", receivers="receiver", frozen="mid")
    # by hand: the receiver sees clean s at the patched position plus the corrupt mid; the side path stays corrupt
    with torch.no_grad():
        m_corrupt = model.mid(corrupt)
        expected = []
        for pos in range(2):
            s = corrupt.clone()
            s[:, pos] = clean[:, pos]
            out = model.head((s + m_corrupt)[:, 0]) + model.side(m_corrupt[:, 0])
            expected.append(float((out[:, 0] - out[:, 1]).double().mean()))
    assert result.metric_values[0].tolist() == pytest.approx(expected, abs=1e-6)
    # position 1 never reaches the output (only position 0 is read)
    assert float(result.values[0, 1]) == pytest.approx(0.0, abs=1e-6)


def test_without_freezing_the_receiver_carries_the_sender_and_mid_paths_into_it() -> None:
    model = TwoPaths().eval()
    g = torch.Generator().manual_seed(1)
    clean, corrupt = torch.randn(3, 2, 3, generator=g), torch.randn(3, 2, 3, generator=g)
    metric = logit_diff(0, 1)
    path = path_patching(model, clean, corrupt, metric, sender="sender", receivers=["receiver", "mid"])
    whole = activation_patching(model, clean, corrupt, "sender", metric)
    assert torch.allclose(path.values, whole.values, atol=1e-9)  # every path goes through the receivers


def test_sender_cannot_be_a_receiver() -> None:
    model = TwoPaths()
    x = torch.randn(2, 2, 3)
    with pytest.raises(ConfigError, match="different layers"):
        path_patching(model, x, x + 1, logit_diff(0, 1), sender="sender", receivers="sender")

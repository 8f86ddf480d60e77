from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.errors import ConfigError
from mechscope.featurevis._forward import forward_until, reader


class Tripwire(nn.Module):
    """Fails if the forward pass ever reaches it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the forward pass should have stopped before this layer")


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Tripwire())


def test_forward_until_stops_after_the_last_recorded_layer(hooks_left):
    model = _model()
    x = torch.ones(2, 3)
    output, store = forward_until(model, x, ["0", "1"], need_output=False, detach=False)
    assert output is None
    assert torch.allclose(store.act("1"), torch.relu(model[0](x)))
    assert store.act("1").requires_grad
    assert hooks_left(model) == 0


def test_forward_until_runs_to_the_end_when_the_output_is_needed(hooks_left):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    output, store = forward_until(model, torch.ones(2, 3), ["1"], need_output=True, inputs=True)
    assert output is not None and output.shape == (2, 2)
    assert torch.equal(reader(output, store)(None), output)
    assert store.input("1").shape == (2, 4)
    assert hooks_left(model) == 0


def test_reader_without_output_raises():
    _, store = forward_until(_model(), torch.ones(1, 3), ["1"], need_output=False)
    with pytest.raises(ConfigError, match="model output was not computed"):
        reader(None, store)(None)

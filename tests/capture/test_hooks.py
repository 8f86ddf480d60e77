from __future__ import annotations

import pytest
import torch

from mechscope.capture import HookPoint, patch


def test_patch_replaces_output(two_layer_net):
    x = torch.tensor([[1.0, 2.0]])
    seen: list[HookPoint] = []

    def zero_first_unit(t: torch.Tensor, *, hook: HookPoint) -> torch.Tensor:
        seen.append(hook)
        t = t.clone()
        t[:, 0] = 0
        return t

    with patch(two_layer_net, {"act": zero_first_unit}):
        out = two_layer_net(x)
    # relu=[0,1,0] -> fc2 = [2.1, -1]
    torch.testing.assert_close(out, torch.tensor([[2.1, -1.0]]))
    assert seen[0].name == "act"
    torch.testing.assert_close(two_layer_net(x), torch.tensor([[3.1, -1.0]]))


def test_patch_none_keeps_output_and_removes_hook_on_error(two_layer_net):
    with pytest.raises(ValueError):
        with patch(two_layer_net, {"fc1": lambda t, hook: None}):
            raise ValueError("boom")
    assert sum(len(m._forward_hooks) for m in two_layer_net.modules()) == 0

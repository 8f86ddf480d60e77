from __future__ import annotations

import pytest
import torch

from mechscope.capture import HookPoint, hooks, patch
from mechscope.capture.hooks import first_tensor
from mechscope.errors import LayerNameError, MechscopeError
from tests.zoo import TinyResNet, tiny_gpt2


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


def test_first_tensor_looks_into_mappings_and_model_outputs():
    from transformers.modeling_outputs import BaseModelOutput

    t = torch.ones(2)
    assert first_tensor({"count": 3, "features": t}, "x") is t
    assert first_tensor(BaseModelOutput(last_hidden_state=t), "x") is t
    assert first_tensor((None, t), "x") is t
    with pytest.raises(MechscopeError, match=r"Layer 'x' returned dict, not a tensor"):
        first_tensor({"count": 3}, "x")


def _resnet_with_block_output_zeroed(model: TinyResNet, x: torch.Tensor, calls: set[int]) -> torch.Tensor:
    """TinyResNet's forward by hand, with the given calls of layer1.0.relu replaced by zeros."""
    block = model.layer1[0]
    h = model.relu(model.bn1(model.conv1(x)))
    out = torch.relu(block.bn1(block.conv1(h)))
    out = out * 0 if 0 in calls else out
    out = torch.relu(block.bn2(block.conv2(out)) + h)
    out = out * 0 if 1 in calls else out
    return model.fc(torch.flatten(model.avgpool(model.layer2(model.layer1[1](out))), 1))


def test_patch_one_call_or_every_call_of_a_module():
    model = TinyResNet().eval()
    x = torch.rand(3, 1, 16, 16)
    zero = lambda t, hook: t * 0  # noqa: E731
    with torch.no_grad():
        for name, calls in [("layer1.0.relu:1", {1}), ("layer1.0.relu:0", {0}), ("layer1.0.relu", {0, 1})]:
            with patch(model, {name: zero}):
                patched = model(x)
            torch.testing.assert_close(patched, _resnet_with_block_output_zeroed(model, x, calls), msg=name)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_patch_replaces_the_first_tensor_of_a_tuple_output():
    model = tiny_gpt2()
    ids = torch.randint(0, 23, (1, 4))
    seen = []
    with torch.no_grad(), patch(model, {"transformer.h.0.attn": lambda t, hook: seen.append(t.shape) or t * 0}):
        hidden = model(ids, output_hidden_states=True).hidden_states
    with torch.no_grad():
        block = model.transformer.h[0]
        expected = hidden[0] + block.mlp(block.ln_2(hidden[0]))  # the attention branch adds nothing
    torch.testing.assert_close(hidden[1], expected)
    assert seen == [torch.Size([1, 4, 16])]


def test_hooks_refuse_a_call_name():
    model = TinyResNet()
    with pytest.raises(LayerNameError, match=r"'layer1\.0\.relu:1' names one call of 'layer1\.0\.relu'"):
        with hooks(model, {"layer1.0.relu:1": lambda *_: None}):
            pass


def test_patch_a_call_that_did_not_happen_raises():
    model = TinyResNet().eval()
    with pytest.raises(LayerNameError, match=r"'layer1\.0\.relu:2' is call 2 of 'layer1\.0\.relu', but "
                       r"'layer1\.0\.relu' ran 2 times"):
        with torch.no_grad(), patch(model, {"layer1.0.relu:2": lambda t, hook: t * 0}):
            model(torch.rand(1, 1, 16, 16))
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0

from __future__ import annotations

import pytest
import torch

from mechscope.capture import capture
from mechscope.errors import DataError, LayerNameError


def _n_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def test_capture_outputs_equal_manual_forward(two_layer_net):
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    with capture(two_layer_net, ["fc1", "act", "fc2"], inputs=True) as store:
        out = two_layer_net(x)
    pre = x @ two_layer_net.fc1.weight.T + two_layer_net.fc1.bias
    torch.testing.assert_close(store.act("fc1"), pre)
    torch.testing.assert_close(store.act("act"), pre.clamp(min=0))
    torch.testing.assert_close(store.act("fc2"), out.detach())
    torch.testing.assert_close(store.input("fc2"), pre.clamp(min=0))
    # Hand-computed: x=[1,2] -> fc1=[1,1,-0.5] -> relu=[1,1,0] -> fc2=[3.1,-1]
    torch.testing.assert_close(out[0], torch.tensor([3.1, -1.0]))


def test_capture_grads_equal_autograd(two_layer_net):
    x = torch.tensor([[1.0, 2.0], [0.3, -0.2]])
    with capture(two_layer_net, ["act"], grads=True) as store:
        out = two_layer_net(x)
        out[:, 0].sum().backward()
    # d out0 / d act = fc2.weight[0] for every example
    expected = two_layer_net.fc2.weight[0].detach().expand(2, 3)
    torch.testing.assert_close(store.grad("act"), expected)


def test_capture_several_batches_concatenate(two_layer_net):
    x = torch.randn(10, 2)
    with capture(two_layer_net, "fc1") as store:
        two_layer_net(x[:4])
        two_layer_net(x[4:])
    torch.testing.assert_close(store.act("fc1"), two_layer_net.fc1(x).detach())


def test_capture_hooks_removed_after_exception(two_layer_net):
    with pytest.raises(RuntimeError):
        with capture(two_layer_net, ["fc1", "fc2"], grads=True):
            two_layer_net(torch.randn(3, 5))  # wrong width raises inside forward
    assert _n_hooks(two_layer_net) == 0


def test_capture_hooks_removed_after_success(small_conv_net, images):
    with capture(small_conv_net, ["features.0", "features.3", "fc"]):
        small_conv_net(images)
    assert _n_hooks(small_conv_net) == 0


def test_capture_unknown_layer_lists_close_matches(small_conv_net):
    with pytest.raises(LayerNameError, match=r"Unknown layer 'features\.9'.*Did you mean 'features\.\d'.*mechscope layers"):
        with capture(small_conv_net, ["features.9"]):
            pass
    assert _n_hooks(small_conv_net) == 0


def test_capture_missing_gradient_explains(two_layer_net):
    with capture(two_layer_net, ["act"], grads=True) as store:
        two_layer_net(torch.randn(2, 2))
    with pytest.raises(DataError, match="backward"):
        store.grad("act")


def test_capture_unrecorded_kind_explains(two_layer_net):
    with capture(two_layer_net, ["fc1"]) as store:
        two_layer_net(torch.randn(2, 2))
    with pytest.raises(LayerNameError, match="inputs=True"):
        store.input("fc1")


def test_capture_detach_false_keeps_graph(two_layer_net):
    x = torch.randn(2, 2, requires_grad=True)
    with capture(two_layer_net, ["fc1"], detach=False) as store:
        two_layer_net(x)
    store.act("fc1").sum().backward()
    assert x.grad is not None

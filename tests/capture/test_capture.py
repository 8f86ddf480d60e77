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


def _all_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_capture_nan_input_raises_naming_the_index(two_layer_net):
    x = torch.zeros(3, 2)
    x[2, 1] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: 1 of 6 \(1 nan\); the first is nan at index "
                       r"\(2, 1\)\. .*check_finite=False to capture\(\)"):
        with capture(two_layer_net, ["fc1"]):
            two_layer_net(x)
    assert _all_hooks(two_layer_net) == 0


def test_capture_check_finite_false_lets_nan_through(two_layer_net):
    x = torch.tensor([[float("nan"), 1.0], [1.0, 2.0]])
    with capture(two_layer_net, ["fc1"], check_finite=False) as store:
        two_layer_net(x)
    assert store.act("fc1")[0].isnan().any() and store.act("fc1")[1].isfinite().all()


def test_capture_float64_input_gives_a_clear_error(two_layer_net):
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32; convert with "
                       r"x\.float\(\) \(or model\.double\(\)\)"):
        with capture(two_layer_net, ["fc1"]):
            two_layer_net(torch.rand(2, 2, dtype=torch.float64))
    assert _all_hooks(two_layer_net) == 0


def test_capture_other_errors_in_the_block_propagate_unchanged(two_layer_net):
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        with capture(two_layer_net, ["fc1"]):
            two_layer_net(torch.rand(2, 5))


def test_capture_checks_a_residual_cnn_with_in_place_relus(residual_cnn):
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad(), capture(residual_cnn, ["relu1", "relu2"]) as store:
        residual_cnn(x)
    assert store.act("relu2").shape == (2, 4, 8, 8)
    x[1, 0, 3, 4] = float("-inf")
    with pytest.raises(DataError, match=r"the first is -inf at index \(1, 0, 3, 4\)"):
        with torch.no_grad(), capture(residual_cnn, ["relu1"]):
            residual_cnn(x)


def test_capture_checks_a_model_returning_a_dict(dict_output_net):
    x = torch.rand(3, 2)
    with capture(dict_output_net, ["act"]) as store:
        out = dict_output_net(x)
    torch.testing.assert_close(store.act("act"), out["hidden"].detach())
    x[0, 0] = float("nan")
    with pytest.raises(DataError, match=r"Non-finite values in inputs: 1 of 6"):
        with capture(dict_output_net, ["act"]):
            dict_output_net(x)


def test_capture_checks_a_gru_sequence_model(gru_net):
    x = torch.rand(2, 5, 3)
    x[1, 4, 2] = float("nan")
    with pytest.raises(DataError, match=r"the first is nan at index \(1, 4, 2\)"):
        with torch.no_grad(), capture(gru_net, ["head"]):
            gru_net(x)
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32"):
        with torch.no_grad(), capture(gru_net, ["head"]):
            gru_net(torch.rand(2, 5, 3, dtype=torch.float64))


def test_capture_keeps_integer_token_ids_working(token_net):
    ids = torch.tensor([[0, 1, 4], [2, 2, 3]])
    with torch.no_grad(), capture(token_net, ["embed"]) as store:
        token_net(ids)
    assert store.act("embed").shape == (2, 3, 3)


def test_capture_checks_keyword_inputs(two_layer_net):
    with pytest.raises(DataError, match=r"Non-finite values in input 'x'"):
        with capture(two_layer_net, ["fc1"]):
            two_layer_net(x=torch.tensor([[float("inf"), 0.0]]))

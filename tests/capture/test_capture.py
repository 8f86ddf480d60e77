from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.capture import capture
from mechscope.errors import DataError, LayerNameError
from tests.capture.oracles import TwoResolutions, manual_resnet
from tests.zoo import TinyResNet, TinyVGG, tiny_gpt2, tiny_vit


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


# -- any model: values as the layer returned them, one name per call ------------------------------


def test_capture_resnet_equals_manual_forward_for_every_call():
    model = TinyResNet().eval()
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = manual_resnet(model, x)
        for _ in range(3):  # the first pass copies everything; later ones keep unmodified outputs without a copy
            with capture(model, list(ref)) as store:
                model(x)
            assert set(store.names) == set(ref)
            for name, expected in ref.items():
                torch.testing.assert_close(store.act(name), expected, rtol=0, atol=0, msg=name)
    # the in-place ops really happened: bn2's output is not what the block returned
    assert not torch.equal(ref["layer1.0.bn2"], ref["layer1.0.relu:1"])
    assert ref["layer1.0.bn2"].min() < 0 and ref["layer1.0.relu:1"].min() == 0


def test_capture_resnet_several_batches_concatenate_per_call():
    model = TinyResNet().eval()
    x = torch.rand(7, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = manual_resnet(model, x)
        names = ["layer1.0.relu", "layer1.0.relu:1", "layer1.0.bn2", "layer2.1.relu:1"]
        with capture(model, names) as store:
            model(x[:3])
            model(x[3:])
    for name in names:
        torch.testing.assert_close(store.act(name), ref[name], msg=name)
        assert store.act(name).shape[0] == 7


def test_capture_resnet_grads_are_taken_at_the_returned_value():
    model = TinyResNet().eval()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    block = model.layer1[0]
    # Manual forward without in-place ops, keeping the tensors whose gradients we want.
    stem = model.relu(model.bn1(model.conv1(x)))
    bn1 = block.bn1(block.conv1(stem))
    mid = torch.relu(bn1)
    bn2 = block.bn2(block.conv2(mid))
    out = torch.relu(bn2 + stem)
    logits = model.fc(torch.flatten(model.avgpool(model.layer2(model.layer1[1](out))), 1))
    expected = torch.autograd.grad(logits[:, 1].sum(), [bn1, mid, bn2, out])
    names = ["layer1.0.bn1", "layer1.0.relu", "layer1.0.bn2", "layer1.0.relu:1"]
    for _ in range(2):
        model.zero_grad()
        with capture(model, names, grads=True) as store:
            model(x)[:, 1].sum().backward()
        for name, grad in zip(names, expected):
            torch.testing.assert_close(store.grad(name), grad, msg=name)


def test_capture_vgg_in_place_relus_equal_manual_forward():
    model = TinyVGG().eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    ref: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        h = x
        for i, layer in enumerate(model.features):
            h = layer(h)
            ref[f"features.{i}"] = h.clone()
        h = h.view(h.size(0), -1)
        for i, layer in enumerate(model.classifier):
            h = layer(h)
            ref[f"classifier.{i}"] = h.clone()
        for _ in range(2):
            with capture(model, list(ref), inputs=True) as store:
                model(x)
            for name, expected in ref.items():
                torch.testing.assert_close(store.act(name), expected, rtol=0, atol=0, msg=name)
            # inputs are taken before the layer runs: an in-place ReLU's input is the conv output
            torch.testing.assert_close(store.input("features.1"), ref["features.0"], rtol=0, atol=0)
    assert ref["features.0"].min() < 0 and ref["classifier.0"].min() < 0


def test_capture_in_place_relu_example_keeps_negative_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True)).eval()
    x = torch.randn(100, 4)
    expected = model[0](x).detach()
    for _ in range(2):
        with torch.no_grad(), capture(model, ["0", "1"]) as store:
            model(x)
        torch.testing.assert_close(store.act("0"), expected, rtol=0, atol=0)
        torch.testing.assert_close(store.act("1"), expected.clamp(min=0), rtol=0, atol=0)
    assert store.act("0").min() < -1.0


def test_capture_detach_false_copy_keeps_the_graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True))
    x = torch.randn(5, 4, requires_grad=True)
    with capture(model, ["0"], detach=False) as store:
        model(x)
    act = store.act("0")
    torch.testing.assert_close(act.detach(), model[0](x).detach())
    act.sum().backward()
    torch.testing.assert_close(x.grad, model[0].weight.detach().sum(0).expand(5, 4))


def test_capture_shared_module_gives_each_call_its_own_name():
    model = TwoResolutions()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        with capture(model, ["conv", "conv:1"]) as store:
            model(x)
        torch.testing.assert_close(store.act("conv"), model.conv(x), rtol=0, atol=0)
        torch.testing.assert_close(store.act("conv:1"), model.conv(model.pool(x)), rtol=0, atol=0)
    assert store.act("conv").shape == (3, 2, 8, 8) and store.act("conv:1").shape == (3, 2, 4, 4)


def test_capture_call_that_did_not_happen_says_how_many_there_were():
    model = TinyResNet().eval()
    with pytest.raises(LayerNameError, match=r"'layer1\.0\.relu:5' is call 5 of 'layer1\.0\.relu', but "
                       r"'layer1\.0\.relu' ran 2 times .*'layer1\.0\.relu', 'layer1\.0\.relu:1'.*layer_names"):
        with torch.no_grad(), capture(model, ["layer1.0.relu:5"]):
            model(torch.rand(2, 1, 16, 16))
    assert _all_hooks(model) == 0


def test_capture_gpt2_blocks_and_model_outputs():
    model = tiny_gpt2()
    ids = torch.randint(0, 23, (2, 6), generator=torch.Generator().manual_seed(0))
    names = ["transformer", "transformer.h.0", "transformer.h.0.attn", "transformer.h.0.ln_2", "transformer.h.0.mlp",
             "transformer.ln_f"]
    with torch.no_grad(), capture(model, names) as store:
        hidden = model(ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(store.act("transformer.h.0"), hidden[1])
    torch.testing.assert_close(store.act("transformer.ln_f"), hidden[2])
    torch.testing.assert_close(store.act("transformer"), hidden[2])  # a ModelOutput: its first tensor
    # the block is residual: h0 = x + attn + mlp(ln_2(x + attn))
    block = model.transformer.h[0]
    with torch.no_grad():
        mid = hidden[0] + store.act("transformer.h.0.attn")
        torch.testing.assert_close(store.act("transformer.h.0.ln_2"), block.ln_2(mid))
        torch.testing.assert_close(hidden[1], mid + store.act("transformer.h.0.mlp"))


def test_capture_vit_layer_calls_equal_manual_forward():
    model = tiny_vit()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    names = ["vit.layers.0", "vit.layers.0.attention", "vit.layers.0.dropout", "vit.layers.0.dropout:1"]
    with torch.no_grad(), capture(model, names) as store:
        hidden = model(x, output_hidden_states=True).hidden_states
    layer = model.vit.layers[0]
    with torch.no_grad():
        attn = layer.attention(layer.layernorm_before(hidden[0]))[0]
        mid = attn + hidden[0]
        mlp = layer.mlp(layer.layernorm_after(mid))
    torch.testing.assert_close(store.act("vit.layers.0.attention"), attn)
    torch.testing.assert_close(store.act("vit.layers.0.dropout"), attn)
    torch.testing.assert_close(store.act("vit.layers.0.dropout:1"), mlp)
    torch.testing.assert_close(store.act("vit.layers.0"), hidden[1])


def test_capture_resnet_hooks_removed_after_success_and_error():
    model = TinyResNet().eval()
    with torch.no_grad(), capture(model, ["layer1.0.relu", "layer1.0.relu:1"], inputs=True, grads=True):
        model(torch.rand(2, 1, 16, 16))
    assert _all_hooks(model) == 0 and not any(m._forward_hooks_always_called for m in model.modules())
    with pytest.raises(RuntimeError):
        with torch.no_grad(), capture(model, ["layer1.0.relu:1", "fc"], inputs=True):
            model(torch.rand(2, 3, 16, 16))  # wrong channel count
    assert _all_hooks(model) == 0 and not any(m._forward_hooks_always_called for m in model.modules())


def test_capture_without_detach_keeps_the_value_on_the_graph_and_safe_from_in_place_ops():
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True)).eval()
    x = torch.randn(50, 4)
    with capture(seq, ["0"], detach=False) as store:
        seq(x).sum().backward()
    kept = store.act("0")
    torch.testing.assert_close(kept.detach(), seq[0](x).detach(), rtol=0, atol=0)  # negatives survive the ReLU
    (grad,) = torch.autograd.grad(seq[1](kept.clone()).sum(), kept)  # kept is on the autograd path
    torch.testing.assert_close(grad, (seq[0](x) > 0).float())


def test_gradient_contributions_on_a_model_that_returns_a_captured_layer():
    from mechscope.circuits import class_contributions
    from tests.zoo import DictNet

    model = DictNet().eval()
    x, y = torch.rand(12, 1, 8, 8), torch.arange(12) % 3
    found = class_contributions(model, x, y, layer="act", top=1, method="gradient")
    with torch.no_grad():
        acts = model.act(model.conv(x))
    # gradient x activation of the logit of each class w.r.t. the GAP features: fc.weight[c] / (h*w) * act
    expected = torch.stack([(model.fc.weight[c][None, :, None, None] / 64 * acts)[y == c].sum(dim=(2, 3)).mean(0)
                            for c in range(3)])
    torch.testing.assert_close(found.contributions, expected, rtol=1e-4, atol=1e-5)

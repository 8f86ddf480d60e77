from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mechscope.capture import ActivationStore, record
from mechscope.errors import DataError
from tests.capture.oracles import TwoResolutions, manual_resnet
from tests.zoo import TinyResNet


def test_record_in_memory_equals_forward(small_conv_net):
    x = torch.rand(70, 1, 8, 8)
    store = record(small_conv_net, ["features.1", "fc"], x, batch_size=16)
    with torch.no_grad():
        expected = small_conv_net(x)
    torch.testing.assert_close(store.act("fc"), expected)
    assert store.act("features.1").shape == (70, 4, 8, 8)


def test_record_to_disk_roundtrips_and_is_memmapped(small_conv_net, tmp_path):
    x = torch.rand(50, 1, 8, 8)
    loader = DataLoader(TensorDataset(x, torch.zeros(50)), batch_size=7)
    store = record(small_conv_net, ["features.3", "fc"], loader, out_dir=tmp_path / "acts")
    reopened = ActivationStore.load(tmp_path / "acts")
    with torch.no_grad():
        expected = small_conv_net(x)
    torch.testing.assert_close(reopened.act("fc"), expected)
    torch.testing.assert_close(store.act("features.3"), reopened.act("features.3"))
    index = json.loads((tmp_path / "acts" / "activations.json").read_text())
    assert index["layers"]["features.3"]["shape"] == [50, 6, 8, 8]
    assert [p.name for p in tmp_path.iterdir()] == ["acts"]  # no temporary folder left


def test_record_failure_leaves_no_folder(small_conv_net, tmp_path):
    bad = torch.rand(10, 2, 8, 8)  # wrong channel count
    with pytest.raises(RuntimeError):
        record(small_conv_net, ["fc"], bad, out_dir=tmp_path / "acts")
    assert list(tmp_path.iterdir()) == []
    assert sum(len(m._forward_hooks) for m in small_conv_net.modules()) == 0


def test_record_restores_training_mode(small_conv_net):
    small_conv_net.train()
    record(small_conv_net, ["fc"], torch.rand(3, 1, 8, 8))
    assert small_conv_net.training


def test_record_rejects_arrays(small_conv_net):
    with pytest.raises(DataError, match="torch.as_tensor"):
        record(small_conv_net, ["fc"], [[1.0]])  # type: ignore[arg-type]


def test_store_load_missing_index(tmp_path):
    with pytest.raises(DataError, match="No activation index"):
        ActivationStore.load(tmp_path)


def test_record_nan_tensor_raises_before_any_forward(small_conv_net, tmp_path):
    x = torch.rand(20, 1, 8, 8)
    x[13, 0, 2, 5] = float("nan")
    calls = []
    small_conv_net.register_forward_pre_hook(lambda *_: calls.append(1))
    with pytest.raises(DataError, match=r"Non-finite values in data: 1 of 1,280 \(1 nan\); the first is nan at index "
                       r"\(13, 0, 2, 5\)\. .*pass check_finite=False to record\(\)"):
        record(small_conv_net, ["fc"], x, batch_size=4, out_dir=tmp_path / "acts")
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_record_checks_each_batch_of_a_loader(small_conv_net):
    x = torch.rand(10, 1, 8, 8)
    x[7, 0, 0, 0] = float("inf")
    loader = DataLoader(TensorDataset(x, torch.zeros(10)), batch_size=3)
    with pytest.raises(DataError, match=r"Non-finite values in data \(batch 2, from example 6\): .*the first is inf at "
                       r"index \(1, 0, 0, 0\)"):
        record(small_conv_net, ["fc"], loader)


def test_record_check_finite_false_records_nan(small_conv_net):
    x = torch.rand(4, 1, 8, 8)
    x[1, 0, 4, 4] = float("nan")
    store = record(small_conv_net, ["fc"], x, check_finite=False)
    assert store.act("fc")[1].isnan().all() and store.act("fc")[[0, 2, 3]].isfinite().all()


def test_record_float64_and_integer_inputs_give_clear_errors(small_conv_net):
    with pytest.raises(DataError, match=r"inputs are float64 but the model's parameters are float32; convert with "
                       r"x\.float\(\) \(or model\.double\(\)\)"):
        record(small_conv_net, ["fc"], torch.rand(3, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(DataError, match=r"inputs are int64 but the model's parameters are float32"):
        record(small_conv_net, ["fc"], torch.ones(3, 1, 8, 8, dtype=torch.long))


def test_record_residual_dict_and_gru_models(residual_cnn, dict_output_net, gru_net):
    assert record(residual_cnn, ["relu2"], torch.rand(5, 1, 8, 8)).act("relu2").shape == (5, 4, 8, 8)
    assert record(dict_output_net, ["act"], torch.rand(5, 2)).act("act").shape == (5, 3)
    sequences = torch.rand(5, 6, 3)
    assert record(gru_net, ["head"], sequences).act("head").shape == (5, 2)
    sequences[4, 0, 0] = float("nan")
    with pytest.raises(DataError, match=r"the first is nan at index \(4, 0, 0\)"):
        record(gru_net, ["head"], sequences)


def test_record_in_place_relu_issue_example_keeps_the_linear_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True)).eval()
    x = torch.randn(100, 4)
    acts = record(model, ["0"], x).act("0")
    with torch.no_grad():
        expected = model[0](x)
    torch.testing.assert_close(acts, expected, rtol=0, atol=0)
    assert acts.min() < -2.0


def test_record_resnet_calls_in_memory_equal_on_disk_and_manual(tmp_path):
    model = TinyResNet().eval()
    x = torch.rand(11, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    names = ["relu", "layer1.0.relu", "layer1.0.relu:1", "layer1.0.bn2", "layer2.0", "layer2.0.downsample", "fc"]
    memory = record(model, names, x, batch_size=4)
    disk = record(model, names, x, batch_size=4, out_dir=tmp_path / "acts")
    with torch.no_grad():
        ref = {name: torch.cat([manual_resnet(model, batch)[name] for batch in x.split(4)]) for name in names}
    for name in names:
        assert memory.act(name).shape[0] == 11  # one row per example, never one per call
        torch.testing.assert_close(memory.act(name), ref[name], rtol=0, atol=0, msg=name)
        torch.testing.assert_close(disk.act(name), memory.act(name), rtol=0, atol=0, msg=name)
    assert memory.act("layer1.0.bn2").min() < 0


def test_record_shared_module_at_two_resolutions():
    model = TwoResolutions()
    x = torch.rand(5, 1, 8, 8)
    store = record(model, ["conv", "conv:1"], x, batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(store.act("conv"), model.conv(x))
        torch.testing.assert_close(store.act("conv:1"), model.conv(model.pool(x)))
    assert record(model, ["conv"], x).act("conv").shape == (5, 2, 8, 8)

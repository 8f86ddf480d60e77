from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mechscope.capture import ActivationStore, record
from mechscope.errors import DataError


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

"""Weight files: safetensors always, PyTorch pickles only when allowed and only as state dicts."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mechscope.errors import CheckpointError
from mechscope.models.weights import load_weights


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_safetensors_weights_load_exactly(tmp_path):
    source, target = _net(1), _net(2)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    load_weights(target, tmp_path / "w.safetensors")
    x = torch.randn(5, 3)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_pickle_refused_without_allow_pickle(tmp_path):
    torch.save(_net(1).state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"pickle-based PyTorch file.*--allow-pickle"):
        load_weights(_net(2), tmp_path / "w.pt")


@pytest.mark.parametrize("wrap", [None, "state_dict", "model_state_dict"])
def test_pickled_state_dict_loads_when_allowed(tmp_path, wrap):
    source = _net(1)
    state = source.state_dict()
    torch.save(state if wrap is None else {wrap: state, "epoch": 3}, tmp_path / "w.pt")
    target = load_weights(_net(2), tmp_path / "w.pt", allow_pickle=True)
    x = torch.randn(5, 3)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_whole_pickled_module_is_refused_even_when_allowed(tmp_path):
    torch.save(_net(1), tmp_path / "w.pt")  # a pickled nn.Module: weights_only refuses to rebuild it
    with pytest.raises(CheckpointError, match=r"holds more than tensors .*save model.state_dict\(\)"):
        load_weights(_net(2), tmp_path / "w.pt", allow_pickle=True)


def test_mismatches_name_the_tensors(tmp_path):
    other = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 2))
    save_file(other.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match=r"does not match the model: unexpected \['3.bias', '3.weight'\], "
                       r"shape mismatch 0.weight: file \(5, 3\) vs model \(4, 3\)"):
        load_weights(_net(2), tmp_path / "w.safetensors")


@pytest.mark.parametrize("name, message", [
    ("w.npz", r"weights must be a .safetensors file, or a PyTorch state_dict"),
    ("gone.safetensors", r"No weights file at"),
])
def test_bad_paths_are_one_line(tmp_path, name, message):
    if name.endswith(".npz"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(CheckpointError, match=message):
        load_weights(_net(2), tmp_path / name)


def test_garbage_files_are_named(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"not a zip or pickle at all")
    with pytest.raises(CheckpointError, match=r"w\.pt"):
        load_weights(_net(2), tmp_path / "w.pt", allow_pickle=True)
    (tmp_path / "w.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(CheckpointError, match=r"w\.safetensors.*header length is invalid"):
        load_weights(_net(2), tmp_path / "w.safetensors")

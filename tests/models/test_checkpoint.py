from __future__ import annotations

import json

import pytest
import torch

from mechscope.data import modular_data
from mechscope.errors import CheckpointError
from mechscope.models import DigitCNN, DigitCNNConfig, ModularMLP, ModularMLPConfig, build_seeded
from mechscope.models.checkpoint import META_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint


@pytest.fixture
def saved(tmp_path):
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, gap=True), seed=3)
    path = save_checkpoint(tmp_path / "ckpt", model, data_spec={"kind": "digits", "source": "digits", "seed": 0},
                           metrics={"test_accuracy": 0.5}, history=[{"epoch": 1.0}])
    return model, path


def test_checkpoint_roundtrip_gives_identical_outputs(saved, images):
    model, path = saved
    loaded = load_checkpoint(path)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(images), model(images), rtol=0, atol=0)
    assert loaded.model_class == "DigitCNN"
    assert loaded.metrics == {"test_accuracy": 0.5}
    assert loaded.history == [{"epoch": 1.0}]
    assert sorted(p.name for p in path.iterdir()) == [META_FILE, WEIGHTS_FILE]


def test_checkpoint_data_spec_rebuilds_data(tmp_path):
    data = modular_data(3, n_train=20, n_test=10, seed=1)
    path = save_checkpoint(tmp_path / "m", ModularMLP(ModularMLPConfig(modulus=3)), data_spec=data.spec)
    again = load_checkpoint(path).data()
    torch.testing.assert_close(again.x_test, data.x_test)


def test_checkpoint_overwrite_is_whole(saved, tmp_path):
    _, path = saved
    other = ModularMLP(ModularMLPConfig(modulus=3))
    save_checkpoint(path, other)
    assert load_checkpoint(path).model_class == "ModularMLP"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary or backup folder left


def test_checkpoint_truncated_weights_named(saved):
    _, path = saved
    weights = path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(checksum|corrupt)"):
        load_checkpoint(path)


def test_checkpoint_truncated_without_checksum_named(saved):
    _, path = saved
    meta = json.loads((path / META_FILE).read_text())
    del meta["weights_sha256"]
    (path / META_FILE).write_text(json.dumps(meta))
    (path / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)


def test_checkpoint_corrupt_json_named(saved):
    _, path = saved
    (path / META_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*not valid JSON"):
        load_checkpoint(path)


def test_checkpoint_mismatched_config_named(saved):
    _, path = saved
    meta = json.loads((path / META_FILE).read_text())
    meta["config"]["channels"] = [4, 4, 4]
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match the model.*shape mismatch"):
        load_checkpoint(path)


def test_checkpoint_unknown_class_named(saved):
    _, path = saved
    meta = json.loads((path / META_FILE).read_text())
    meta["model_class"] = "os.system"
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown model class 'os.system'"):
        load_checkpoint(path)


def test_checkpoint_missing_folder_and_file(tmp_path, saved):
    with pytest.raises(CheckpointError, match="No checkpoint folder"):
        load_checkpoint(tmp_path / "nope")
    _, path = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(path)


def test_checkpoint_unregistered_model_refused(tmp_path):
    with pytest.raises(CheckpointError, match="register_model"):
        save_checkpoint(tmp_path / "x", torch.nn.Linear(2, 2))
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_crash_mid_write_leaves_old_checkpoint(saved, monkeypatch, tmp_path):
    model, path = saved
    before = (path / WEIGHTS_FILE).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mechscope.models.checkpoint.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model)
    assert (path / WEIGHTS_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]

from __future__ import annotations

import json

import pytest

from mechscope.cli.main import main
from mechscope.data import digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A seeded, untrained GAP DigitCNN on 8x8 digits: the command's output shape does not need training."""
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True), seed=0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "gap", model, data_spec=digits_data("digits").spec)


def test_circuits_json_keys_and_figures(checkpoint, tmp_path, capsys):
    code = main(["circuits", str(checkpoint), "--format", "json", "--n-random", "2", "--out", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["layer"] == "relu3" and result["method"] == "gap"
    assert list(result["classes"]) == [str(c) for c in range(10)]
    for entry in result["classes"].values():
        assert set(entry) == {"top_channels", "contributions", "ablation_drop", "random_ablation_drop"}
    assert [(p["source"], p["target"]) for p in result["connections"]] == [("conv1", "conv2"), ("conv2", "conv3")]
    assert len(result["connections"][1]["top_inbound"]) == 32
    assert [layer["layer"] for layer in result["depth"]["layers"]] == ["relu1", "relu2", "relu3"]
    names = {p.rsplit("/", 1)[-1] for p in result["figures"]}
    assert {"circuits.png", "ablation.png", "circuit_class_3.png", "connections_conv2_conv3.png",
            "depth_statistics.png", "activations.png", "kernels_conv1.png"} <= names
    assert all((tmp_path / name).stat().st_size > 1000 for name in names)


def test_circuits_text_reports_ratio_and_claim(checkpoint, capsys):
    assert main(["circuits", str(checkpoint), "--n-random", "1", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "Top 2 detectors per class in relu3" in out
    assert "as many random channels" in out and "(ratio " in out
    assert "deeper activations are sparser" in out


def test_circuits_bad_flags_exit_2(checkpoint, capsys):
    assert main(["circuits", str(checkpoint), "--top", "0"]) == 2
    assert "Invalid value for '--top': Input should be greater than or equal to 1" in capsys.readouterr().err
    assert main(["circuits", str(checkpoint), "--layer", "relu9"]) == 2
    err = capsys.readouterr().err
    assert "--layer" in err and "relu3" in err and "Traceback" not in err
    assert main(["circuits", str(checkpoint), "--ablation", "half"]) == 2


def test_circuits_missing_checkpoint_exit_1(tmp_path, capsys):
    assert main(["circuits", str(tmp_path / "nothing")]) == 1
    assert "No checkpoint folder" in capsys.readouterr().err

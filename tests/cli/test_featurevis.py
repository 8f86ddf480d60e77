from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechscope.cli.main import main
from mechscope.data import digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained 8x8 DigitCNN with the digits data spec: the command's plumbing needs no training."""
    path = tmp_path_factory.mktemp("fv") / "cnn"
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(4, 8)), seed=0)
    save_checkpoint(path, model, data_spec=digits_data("digits").spec)
    return path


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_featurevis_json_lists_every_unit_with_evidence_and_image(checkpoint, tmp_path, capsys):
    code, out, _ = _run(
        ["featurevis", str(checkpoint), "--layer", "relu2", "--steps", "8", "--restarts", "1",
         "--out", str(tmp_path), "--format", "json"],
        capsys,
    )
    result = json.loads(out)
    assert code == 0
    assert [row["unit"] for row in result["units"]] == list(range(8))
    for row in result["units"]:
        assert {"unit", "activation", "dataset_max", "ratio", "image"} <= set(row)
        assert Path(row["image"]).is_file()
        if row["ratio"] is not None:
            assert row["ratio"] == pytest.approx(row["activation"] / row["dataset_max"])
    assert Path(result["grid"]) == tmp_path / "relu2_channel.png" and Path(result["grid"]).is_file()
    assert result["objective"] == "channel" and result["steps"] == 8


def test_featurevis_selected_units_and_logits_of_the_output(checkpoint, tmp_path, capsys):
    code, out, _ = _run(
        ["featurevis", str(checkpoint), "--objective", "logit", "--units", "0,3,7", "--steps", "4",
         "--restarts", "1", "--out", str(tmp_path), "--format", "json"],
        capsys,
    )
    result = json.loads(out)
    assert code == 0
    assert [row["unit"] for row in result["units"]] == [0, 3, 7]
    assert result["layer"] is None and (tmp_path / "output_logit" / "unit_007.png").is_file()
    assert Path(result["pairs"]) == tmp_path / "output_logit_vs_prob.png" and Path(result["pairs"]).is_file()


@pytest.mark.parametrize("objective", ["neuron", "layer", "prob"])
def test_featurevis_other_objectives_run(checkpoint, tmp_path, objective, capsys):
    layer = "fc2" if objective == "prob" else "relu1"
    code, out, _ = _run(
        ["featurevis", str(checkpoint), "--layer", layer, "--objective", objective, "--steps", "3",
         "--restarts", "1", "--out", str(tmp_path), "--format", "json"],
        capsys,
    )
    assert code == 0
    assert len(json.loads(out)["units"]) == {"neuron": 4, "layer": 1, "prob": 10}[objective]


def test_featurevis_text_output_is_a_table(checkpoint, tmp_path, capsys):
    code, out, _ = _run(
        ["featurevis", str(checkpoint), "--layer", "relu1", "--units", "1", "--steps", "3", "--out", str(tmp_path)],
        capsys,
    )
    assert code == 0
    assert "relu1 channel 1: 3 steps" in out and "dataset max" in out and "grid:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "relu9"], "--layer: Unknown layer 'relu9'"),
        (["--layer", "relu2", "--units", "3,99"], "--units 99 is out of range: layer 'relu2' has 8 units"),
        (["--layer", "relu2", "--units", "a,b"], "--units must be 'all' or comma-separated integers"),
        (["--objective", "channel"], "--layer is required for --objective channel"),
        (["--layer", "relu1", "--objective", "layer", "--units", "1"], "--units does not apply"),
        (["--layer", "relu1", "--steps", "0"], "Invalid value for '--steps': Input should be greater than or equal to 1"),
        (["--layer", "relu1", "--objective", "texture"], "--objective"),
    ],
)
def test_featurevis_bad_arguments_exit_2_with_one_line(checkpoint, tmp_path, args, message, capsys):
    code, _, err = _run(["featurevis", str(checkpoint), *args, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_featurevis_missing_checkpoint_exits_1(tmp_path, capsys):
    code, _, err = _run(["featurevis", str(tmp_path / "nope"), "--layer", "relu1"], capsys)
    assert code == 1 and "Traceback" not in err


def test_featurevis_help_shows_examples(capsys):
    code, out, _ = _run(["featurevis", "--help"], capsys)
    assert code == 0 and "mechscope units render runs/digit-cnn --layer relu2" in out

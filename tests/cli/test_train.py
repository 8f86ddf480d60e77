from __future__ import annotations

import json

import pytest

from mechscope.cli.main import main


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_modular_mlp_json_reports_accuracy_and_checkpoint(tmp_path, capsys):
    code = main(["train", "modular-mlp", "--out", str(tmp_path / "m"), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["test_accuracy"] == 1.0
    assert result["checkpoint"] == str(tmp_path / "m")
    assert (tmp_path / "m" / "checkpoint.json").is_file()


def test_train_tiny_relu_json_reports_mse(tmp_path, capsys):
    code = main(["train", "tiny-relu", "--function", "weighted", "--out", str(tmp_path / "t"), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["test_mse"] < 1e-3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "modular-mlp", "--modulus", "1"], "Invalid value for '--modulus': Input should be greater than or equal to 2"),
        (["train", "modular-mlp", "--modulus", "x"], "--modulus"),
        (["train", "tiny-relu", "--function", "cube"], "--function"),
        (["train", "digit-cnn", "--data", "cifar"], "--data must be digits, mnist5k or idx:PATH"),
        (["train", "nope"], "No such command"),
    ],
)
def test_train_bad_arguments_exit_2_with_one_line(args, message, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_train_digit_cnn_missing_idx_folder_exits_1(tmp_path, capsys):
    code = main(["train", "digit-cnn", "--data", f"idx:{tmp_path / 'missing'}", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 1
    assert "missing" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_help_lists_examples(capsys):
    code = main(["train", "modular-mlp", "--help"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Examples:" in out and "--modulus" in out


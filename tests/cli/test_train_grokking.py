from __future__ import annotations

import json

from mechscope.cli.main import main
from mechscope.models.checkpoint import load_checkpoint


def test_train_grokking_mlp_writes_curves_and_progress_then_fourier_plots_them(tmp_path, capsys):
    out = tmp_path / "grok"
    args = ["train", "grokking-mlp", "--modulus", "11", "--train-fraction", "0.5", "--width", "16",
            "--d-embed", "8", "--steps", "60", "--out", str(out), "--format", "json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["target"] == "grokking-mlp" and summary["epochs_run"] == 60
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(summary)
    ckpt = load_checkpoint(out)
    assert ckpt.model_class == "GrokkingMLP"
    assert [r["step"] for r in ckpt.history][-1] == 60.0
    assert {"test_loss", "test_accuracy"} <= set(ckpt.history[0])
    assert len(ckpt.extra["progress"]) == 61  # snapshot every step for 60 steps, plus the final model
    assert ckpt.data().x_train.shape[0] == 61  # 121 pairs, round(60.5) = 60 held out

    figures = tmp_path / "figures"
    assert main(["fourier", str(out), "--out", str(figures), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (figures / "progress.png").is_file()
    assert str(figures / "progress.png") in result["figures"]


def test_train_grokking_mlp_rejects_a_bad_train_fraction(tmp_path, capsys):
    assert main(["train", "grokking-mlp", "--train-fraction", "1.0", "--out", str(tmp_path / "x")]) == 2
    assert "--train-fraction" in capsys.readouterr().err

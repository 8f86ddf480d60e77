from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechscope.cli.main import main
from mechscope.data import modular_data
from mechscope.fourier.construct import gromov_grokking_mlp
from mechscope.models.checkpoint import save_checkpoint

REQUIRED = {
    "key_frequencies",
    "energy_share",
    "top_k_energy",
    "restricted_loss",
    "excluded_loss",
    "test_loss",
    "accuracy_after_ablation",
}


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def gromov_checkpoint(tmp_path_factory) -> Path:
    model = gromov_grokking_mlp(23, [2, 6, 9], width=768)
    data = modular_data(23, encoding="pairs", test_fraction=0.5)
    return save_checkpoint(tmp_path_factory.mktemp("fourier") / "gromov", model, data_spec=data.spec)


def test_fourier_json_reports_the_planted_frequencies(gromov_checkpoint, capsys):
    code = main(["fourier", str(gromov_checkpoint), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert REQUIRED <= set(result)
    assert result["key_frequencies"] == [2, 6, 9]
    assert result["top_k_energy"]["3"] == pytest.approx(1.0)
    assert result["accuracy_after_ablation"]["none"] == 1.0
    assert result["restricted_loss"] < 1e-6 and result["excluded_loss"] > 1.0


def test_fourier_text_and_figures(gromov_checkpoint, tmp_path, capsys):
    code = main(["fourier", str(gromov_checkpoint), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "key frequencies: [2, 6, 9]" in out
    assert "-> clock" in out
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["logits_2d.png", "neurons.png", "spectrum.png"]


def test_fourier_rejects_a_bad_share(gromov_checkpoint, capsys):
    assert main(["fourier", str(gromov_checkpoint), "--share", "1.5"]) == 2
    assert "--share" in capsys.readouterr().err


def test_fourier_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["fourier", str(tmp_path / "nope")]) == 1
    assert "No checkpoint folder" in capsys.readouterr().err

"""`mechscope patch` and `mechscope lens` on a small grokking transformer and on a user's image model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mechscope.cli.main import main
from mechscope.models.grokking_train import GrokkingTrainConfig
from mechscope.models.grokking_transformer import GrokkingTransformerConfig
from mechscope.recipes.grokking import train_grokking_transformer


@pytest.fixture(scope="module")
def transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("patch") / "gt"
    train_grokking_transformer(out, model_config=GrokkingTransformerConfig(modulus=11, d_model=16, n_heads=2,
                                                                            d_mlp=32),
                               train_config=GrokkingTrainConfig(steps=40, lr=3e-3), progress=False)
    return out


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_default_pairing_positions_follow_the_architecture(transformer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patch", str(transformer), "--format", "json"]) == 0
    result = _json(capsys)
    assert {"layers", "positions", "values", "metric"} <= set(result)
    assert result["layers"] == ["blocks.0.resid_pre", "blocks.0.resid_mid", "blocks.0.resid_post"]
    assert result["positions"] == [0, 1, 2]
    # (a, b) -> (a, b + 1): only b differs at the input; after attention only the "=" position is read
    expected = [[0, 1, 0], [0, 0, 1], [0, 0, 1]]
    assert result["values"] == [[pytest.approx(v, abs=1e-5) for v in row] for row in expected]
    assert result["metric"] == "logit diff answer - wrong"


def test_heads_both_methods_and_figures(transformer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["patch", str(transformer), "--clean", "3,5", "--corrupt", "3,9", "--along", "head",
                 "--method", "both", "--out", str(tmp_path), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["layers"] == ["blocks.0.attn.z"] and result["heads"] == [0, 1]
    assert len(result["attribution"]["values"][0]) == 2 and result["attribution"]["max_error"] >= 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["patching-attribution.png", "patching-comparison.png", "patching-exact.png"]


@pytest.mark.parametrize("args, message", [
    (["--clean", "3"], "'a,b'"),
    (["--clean", "3,5", "--corrupt", "3,16"], "residues"),
    (["--clean", "3,5", "--corrupt", "4,4"], "same answer"),
    (["--corrupt", "3,5"], "--corrupt needs --clean"),
    (["--layer", "nope"], "nope"),
])
def test_bad_pairs_are_one_line(transformer: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                message: str) -> None:
    code = main(["patch", str(transformer), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_lens_decomposition_is_exact(transformer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lens", str(transformer), "--format", "json", "--out", str(tmp_path)]) == 0
    result = _json(capsys)
    assert result["lens"]["layers"] == ["blocks.0.resid_pre", "blocks.0.resid_post"]
    assert result["unembed"] == "unembed" and result["final_norm"] is None
    assert result["attribution"]["max_remainder"] < 1e-4
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["logit-attribution.png", "logit-lens.png"]


DICT_NET = """
import torch
from torch import nn


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 5, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        features = self.act(self.conv(x))
        return {"logits": self.fc(features.mean(dim=(2, 3))), "features": features}
"""


def test_patch_a_users_dict_model_by_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "net.py"
    net.write_text(DICT_NET)
    rng = np.random.default_rng(0)
    y = np.arange(40) % 3
    x = (rng.normal(size=(40, 1, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x[:20], y=y[:20], x_test=x[20:], y_test=y[20:])
    code = main(["patch", "--model", f"{net}:DictNet", "--trust-code", "--data", f"npz:{tmp_path / 'data.npz'}",
                 "--layer", "act", "--along", "unit", "--output", "logits", "--clean", "0", "--corrupt", "1",
                 "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["units"] == [0, 1, 2, 3, 4] and len(result["values"][0]) == 5
    # oracle: patch channel 2 of the in-place ReLU by hand
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_net", net)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    model = module.DictNet().eval()
    clean, corrupt = torch.from_numpy(x[20:21]), torch.from_numpy(x[21:22])
    with torch.no_grad():
        source = model.act(model.conv(clean)).clone()
        features = model.act(model.conv(corrupt)).clone()
        features[:, 2] = source[:, 2]
        logits = model.fc(features.mean(dim=(2, 3)))
    expected = float(logits[0, y[20]] - logits[0, y[21]])
    assert result["metric_values"][0][2] == pytest.approx(expected, abs=1e-5)

from __future__ import annotations

import json

import pytest

from mechscope.attribution.registry import METHODS
from mechscope.cli.main import main
from mechscope.data import digits_data, modular_data
from mechscope.models import DigitCNN, DigitCNNConfig, ModularMLP, ModularMLPConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint
from tests.attribution.conftest import one_thread

ROW_KEYS = {"deletion_auc", "insertion_auc", "sanity_spearman", "passes_sanity"}


@pytest.fixture(autouse=True)
def _single_thread():
    # Tiny models: a second thread only adds contention on a shared 2-core machine.
    with one_thread():
        yield


@pytest.fixture(scope="module")
def digits_spec() -> dict:
    return digits_data("digits").spec


@pytest.fixture(scope="module")
def gap_checkpoint(tmp_path_factory, digits_spec):
    path = tmp_path_factory.mktemp("ckpt") / "gap"
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True), seed=0)
    return save_checkpoint(path, model, data_spec=digits_spec)


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory, digits_spec):
    path = tmp_path_factory.mktemp("ckpt") / "dense"
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=False), seed=0)
    return save_checkpoint(path, model, data_spec=digits_spec)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_attribute_json_sanity_and_faithfulness_keys(gap_checkpoint, capsys):
    args = ["attribute", str(gap_checkpoint), "--method", "grad-cam", "--method", "guided-backprop",
            "--n", "4", "--sanity", "--faithfulness", "--format", "json"]
    assert main(args) == 0
    result = _json(capsys)
    assert set(result["methods"]) == {"grad-cam", "guided-backprop"}
    for row in result["methods"].values():
        assert set(row) == ROW_KEYS
        assert 0.0 <= row["deletion_auc"] <= 1.0 and 0.0 <= row["insertion_auc"] <= 1.0
        assert len(row["sanity_spearman"]) == 4 and isinstance(row["passes_sanity"], bool)
    assert set(result["random_baseline"]) == {"deletion_auc", "insertion_auc"}
    assert result["sanity_steps"] == ["fc", "conv3", "conv2", "conv1"]
    assert result["layer"] == "relu3" and result["n_images"] == 4 and result["figures"] == []


def test_attribute_without_checks_reports_nulls(gap_checkpoint, capsys):
    assert main(["attribute", str(gap_checkpoint), "--method", "cam", "--n", "2", "--format", "json"]) == 0
    result = _json(capsys)
    assert result["methods"] == {"cam": dict.fromkeys(ROW_KEYS)}
    assert result["random_baseline"] is None


def test_attribute_out_writes_figures_and_text_table(gap_checkpoint, tmp_path, capsys):
    out = tmp_path / "figs"
    args = ["attribute", str(gap_checkpoint), "--method", "saliency", "--method", "grad-cam", "--layer", "relu2",
            "--n", "3", "--sanity", "--faithfulness", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "layer relu2" in text and "random map" in text and "Figure:" in text
    for name in ("attribution_maps.png", "faithfulness.png", "sanity.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_attribute_default_methods_skip_cam_on_dense_model(dense_checkpoint, capsys):
    assert main(["attribute", str(dense_checkpoint), "--n", "2", "--format", "json"]) == 0
    result = _json(capsys)
    assert set(result["methods"]) == set(METHODS) - {"cam"}
    assert "global average pool" in result["skipped"]["cam"]


def test_attribute_cam_on_dense_model_exits_1_with_reason(dense_checkpoint, capsys):
    assert main(["attribute", str(dense_checkpoint), "--method", "cam", "--n", "2"]) == 1
    err = capsys.readouterr().err
    assert "global average pool" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "gradcam"], "Did you mean 'grad-cam'"),
        (["--method", "grad-cam", "--layer", "relu9"], "--layer: Unknown layer 'relu9'"),
        (["--n", "0"], "Invalid value for '--n': Input should be greater than or equal to 1"),
    ],
)
def test_attribute_bad_flags_exit_2(gap_checkpoint, capsys, args, message):
    assert main(["attribute", str(gap_checkpoint), *args]) == 2
    assert message in capsys.readouterr().err


def test_attribute_non_image_checkpoint_exits_2(tmp_path, capsys):
    data = modular_data(3, n_train=12, n_test=6)
    save_checkpoint(tmp_path / "m", ModularMLP(ModularMLPConfig(modulus=3)), data_spec=data.spec)
    assert main(["attribute", str(tmp_path / "m"), "--method", "saliency"]) == 2
    assert "image" in capsys.readouterr().err

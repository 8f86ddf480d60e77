from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechscope.cli.main import main
from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint
from tests.symbolic._fit import article_case


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Fitted TinyReLU checkpoints for sum / weighted / product, and an untrained tanh ModularMLP."""
    root = tmp_path_factory.mktemp("formula")
    paths = {}
    for function in ("sum", "weighted", "product"):
        model, data = article_case(function)
        paths[function] = save_checkpoint(root / function, model, data_spec=data.spec)
    tanh = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=4, hidden=3), seed=0)
    paths["tanh"] = save_checkpoint(root / "tanh", tanh, data_spec=modular_data(2).spec)
    return paths


def test_formula_json_has_regions_affine_flag_and_relations(checkpoints, capsys):
    code = main(["formula", str(checkpoints["weighted"]), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["affine_on_data"] is True
    region = result["regions"][0]
    assert {"coverage", "coefficients", "intercept", "formula", "max_abs_error"} <= set(region)
    assert region["coverage"] >= 0.99 and region["max_abs_error"] < 1e-5
    assert len(region["coefficients"]) == 5
    assert result["relations"]["w2*b1+b2"]["holds"] is True
    assert all({"value", "expected", "holds"} <= set(r) for r in result["relations"].values())


def test_formula_product_checkpoint_reads_in_original_space(checkpoints, capsys):
    code = main(["formula", str(checkpoints["product"]), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["transforms"] == {"input": "log", "output": "exp"}
    assert result["formula"] == "f(X) = 1.0 * x1^1.0 * x2^1.0 * x3^1.0 * x4^1.0 * x5^1.0"
    assert result["simplified_formula"] == "f(X) = x1*x2*x3*x4*x5"
    assert result["metrics"]["mse_original"] < 1e-6


def test_formula_text_says_where_the_formula_holds(checkpoints, capsys):
    code = main(["formula", str(checkpoints["sum"])])
    out = capsys.readouterr().out
    assert code == 0
    assert "The ReLU unit is active on" in out
    assert "f(X) = x1 + x2 + x3 + x4 + x5" in out
    assert "b2 = -w2 * b1" in out and "FAILS" not in out


def test_formula_out_writes_png(checkpoints, tmp_path, capsys):
    code = main(["formula", str(checkpoints["sum"]), "--out", str(tmp_path / "fig"), "--format", "json"])
    result = _json(capsys)
    assert code == 0
    png = Path(result["figure"])
    assert png == tmp_path / "fig" / "formula.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_formula_split_train_and_spec_file(checkpoints, tmp_path, capsys):
    assert main(["formula", str(checkpoints["sum"]), "--split", "train", "--format", "json"]) == 0
    assert _json(capsys)["n_points"] == 30_000
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "function", "function": "sum", "n_train": 10, "n_test": 500}))
    assert main(["formula", str(checkpoints["sum"]), "--data", str(spec), "--format", "json"]) == 0
    assert _json(capsys)["n_points"] == 500


def test_formula_declared_transform_flags_override_data(checkpoints, capsys):
    code = main(["formula", str(checkpoints["product"]), "--output-transform", "identity", "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["transforms"] == {"input": "log", "output": "identity"}
    assert result["formula"].startswith("f(X) = 1.0*log(x1)")


def test_formula_tanh_model_exits_1_with_local_hint(checkpoints, capsys):
    code = main(["formula", str(checkpoints["tanh"])])
    err = capsys.readouterr().err
    assert code == 1
    assert "not piecewise linear" in err and "--local" in err
    assert len(err.strip().splitlines()) == 1


def test_formula_local_labels_linearization(checkpoints, capsys):
    code = main(["formula", str(checkpoints["tanh"]), "--local", "--format", "json"])
    result = _json(capsys)
    assert code == 0
    assert result["mode"] == "local_linearization"
    assert "not a global formula" in result["label"]
    assert len(result["points"][0]["coefficients"]) == 2  # one row per class logit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "valid"], "'valid' is not one of 'all', 'train', 'test'"),
        (["--data", "valid"], "--data: "),
        (["--input-transform", "sqrt"], "--input-transform must be one of identity, log, exp"),
        (["--tolerance", "-1"], "--tolerance must be >= 0"),
        (["--max-regions", "0"], "Invalid value for '--max-regions': Input should be greater than or equal to 1"),
    ],
)
def test_formula_bad_flags_exit_2(checkpoints, args, message, capsys):
    code = main(["formula", str(checkpoints["sum"]), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_formula_missing_checkpoint_exits_1(tmp_path, capsys):
    code = main(["formula", str(tmp_path / "nothing")])
    assert code == 1
    assert "No checkpoint folder" in capsys.readouterr().err


@pytest.mark.slow
def test_formula_reads_a_trained_tiny_relu_checkpoint(tmp_path, capsys):
    assert main(["train", "tiny-relu", "--function", "weighted", "--out", str(tmp_path / "w"), "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["formula", str(tmp_path / "w"), "--format", "json"]) == 0
    result = _json(capsys)
    top = result["regions"][0]
    assert top["max_abs_error"] < 1e-5
    assert top["coverage"] == pytest.approx(result["unit_active_fraction"]["act:0"])
    assert result["affine_on_data"] is True
    assert result["metrics"]["max_coefficient_error"] < 0.02 and result["metrics"]["constant_error"] < 0.02
    assert all(r["holds"] for r in result["relations"].values())


def test_formula_local_on_nan_weights_says_which_layer_is_not_finite(tmp_path, capsys):
    import torch

    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=3), seed=0)
    name, weight = next((n, p) for n, p in model.named_parameters() if n.endswith("weight"))
    with torch.no_grad():
        weight[0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "nan", model, data_spec=modular_data(2).spec)
    code = main(["formula", str(path), "--local"])
    err = capsys.readouterr().err
    layer = name.rsplit(".", 1)[0]
    assert code == 1
    assert f"The weights of layer '{layer}' are not finite" in err and "index (0, 0)" in err

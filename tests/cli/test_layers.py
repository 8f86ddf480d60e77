from __future__ import annotations

import json

from mechscope.cli.main import main
from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig
from mechscope.models.checkpoint import save_checkpoint


def test_layers_json_lists_shapes(tmp_path, capsys):
    data = modular_data(3, n_train=30, n_test=10)
    save_checkpoint(tmp_path / "m", ModularMLP(ModularMLPConfig(modulus=3)), data_spec=data.spec)
    code = main(["layers", str(tmp_path / "m"), "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = {row["name"]: row for row in result["layers"]}
    assert rows["hidden.0"]["output_shape"] == [5]
    assert rows["output"]["output_shape"] == [3]
    assert rows["hidden.0.linear"]["n_params"] == 6 * 5 + 5


def test_layers_text_table(tmp_path, capsys):
    data = modular_data(2, n_train=8, n_test=4)
    save_checkpoint(tmp_path / "m", ModularMLP(ModularMLPConfig()), data_spec=data.spec)
    assert main(["layers", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "hidden.4.act" in out and "Tanh" in out


def test_layers_corrupt_checkpoint_exit_1(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    code = main(["layers", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1
    assert "incomplete" in err and "Traceback" not in err

from __future__ import annotations

import json

import pytest

from mechscope.cli.main import main
from mechscope.data import digits_data
from mechscope.models import DigitCNN, DigitCNNConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(8, 16, 32), pools=2, gap=True), seed=0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "gap", model, data_spec=digits_data("digits").spec)


def test_examples_json_with_polysemanticity_and_figures(checkpoint, tmp_path, capsys):
    code = main(["examples", str(checkpoint), "--layer", "relu2", "--k", "4", "--split", "test",
                 "--format", "json", "--out", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["layer"] == "relu2" and result["k"] == 4 and result["n_inputs"] == 451
    unit = result["units"][0]
    assert len(unit["top"]["indices"]) == 4 and len(unit["bottom"]["positions"]) == 4
    assert unit["top"]["values"] == sorted(unit["top"]["values"], reverse=True)
    assert len(result["polysemanticity"]["units"]) == 16
    names = {p.rsplit("/", 1)[-1] for p in result["figures"]}
    assert names == {"examples_relu2_units0-15_top.png", "examples_relu2_units0-15_bottom.png",
                     "examples_relu2_units0-15_crops.png", "polysemanticity_relu2.png"}


def test_examples_text_lists_units(checkpoint, capsys):
    assert main(["examples", str(checkpoint), "--layer", "fc", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fc: 10 units, top/bottom 3 of 1797 inputs")
    assert "unit   9:" in out and "polysemantic units:" in out


def test_examples_bad_flags_exit_2(checkpoint, capsys):
    assert main(["examples", str(checkpoint), "--layer", "relu2", "--k", "0"]) == 2
    assert "Invalid value for '--k': Input should be greater than or equal to 1" in capsys.readouterr().err
    assert main(["examples", str(checkpoint), "--layer", "rleu2"]) == 2
    assert "Did you mean 'relu2'" in capsys.readouterr().err
    assert main(["examples", str(checkpoint)]) == 2  # --layer is required


def test_examples_kept_in_a_cache_are_read_back_the_same(checkpoint, tmp_path, capsys):
    args = ["units", "examples", str(checkpoint), "--layer", "relu2", "--k", "4", "--format", "json"]
    assert main(args) == 0
    alone = json.loads(capsys.readouterr().out)
    for _ in range(2):  # computed in shards and stored, then read back
        assert main([*args, "--cache", str(tmp_path / "tasks")]) == 0
        assert json.loads(capsys.readouterr().out) == alone
    assert len(list((tmp_path / "tasks").glob("*/*.json"))) == 2  # two shards in one process
    assert main([*args, "--cache", str(tmp_path / "tasks"), "--no-cache"]) == 2
    assert "contradict" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ray
def test_examples_on_ray_workers_equal_one_process(checkpoint, capsys):
    pytest.importorskip("ray")
    args = ["units", "examples", str(checkpoint), "--layer", "relu2", "--k", "4", "--format", "json"]
    assert main(args) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([*args, "--workers", "2"]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert on_ray == alone  # indices, values, positions and polysemanticity, exactly


@pytest.mark.parametrize("address, message", [("127.0.0.1:1", "no Ray cluster answers"), ("nope", "HOST:PORT")])
def test_examples_unreachable_ray_cluster_is_one_line(checkpoint, capsys, address, message):
    code = main(["units", "examples", str(checkpoint), "--layer", "fc", "--ray-address", address])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1

from __future__ import annotations

import json

import pytest
import torch

from mechscope.cli.main import main
from mechscope.data import digits_data, modular_data
from mechscope.models import DigitCNN, DigitCNNConfig, ModularMLP, ModularMLPConfig, build_seeded, train
from mechscope.models.checkpoint import save_checkpoint

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread for this module, restored afterwards: the tensors are tiny (see tests/probes/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SPEC_KEYS = {
    "heads", "all_heads_accuracy", "baseline_accuracy", "control_accuracy", "selectivity", "untrained_accuracy",
    "seeds",
}


@pytest.fixture(scope="module")
def mod2_checkpoint(tmp_path_factory):
    data = modular_data(2, n_train=400, n_test=400, seed=0)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2), seed=0)
    result = train(model, data, progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "mod2"
    save_checkpoint(path, model, data_spec=data.spec, metrics=result.metrics)
    return path


def test_probe_json_has_exactly_the_spec_keys(mod2_checkpoint, capsys):
    code = main(["probe", str(mod2_checkpoint), "--seeds", "3", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(result) == SPEC_KEYS
    assert result["heads"] == {"a": 1.0, "b": 1.0, "output": 1.0}
    assert result["all_heads_accuracy"] == 1.0
    assert result["seeds"]["values"] == [0, 1, 2]
    assert result["selectivity"] == pytest.approx(result["all_heads_accuracy"] - result["control_accuracy"])
    assert 0.0 <= result["baseline_accuracy"] < 0.5 and result["untrained_accuracy"] is not None


def test_probe_out_writes_figures_and_by_layer(mod2_checkpoint, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["probe", str(mod2_checkpoint), "--seeds", "1", "--no-untrained", "--by-layer", "--out", str(out),
                 "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["untrained_accuracy"] is None
    assert {r["layer"] for r in result["by_layer"]["rows"]} == {f"hidden.{i}" for i in range(5)}
    names = sorted(p.name for p in out.iterdir())
    assert names == ["accuracy_by_layer.png", "kernel_responses.png", "kernels.png", "probe_accuracy.png"]
    assert sorted(p.rsplit("/", 1)[-1] for p in result["figures"]) == names


def test_probe_text_output_reads_as_mean_and_std(mod2_checkpoint, capsys):
    assert main(["probe", str(mod2_checkpoint), "--seeds", "2", "--split", "types", "--no-untrained"]) == 0
    out = capsys.readouterr().out
    assert "all heads right:" in out and "+/-" in out and "split by types" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernel-size", "2by2"], "--kernel-size must look like ROWSxCOLS"),
        (["--seeds", "0"], "Invalid value for '--seeds': Input should be greater than or equal to 1"),
        (["--epochs", "0"], "Invalid value for '--epochs': Input should be greater than or equal to 1"),
        (["--hidden", "30,x"], "--hidden must be comma-separated positive integers"),
        (["--test-fraction", "1"], "--test-fraction must lie strictly between 0 and 1"),
        (["--layers", "hidden.0,hiden.1"], "--layers: Unknown layer 'hiden.1'.*Did you mean"),
        (["--kernel-size", "9x9"], "kernel_size \\(9, 9\\) does not fit"),
    ],
)
def test_probe_bad_flags_print_one_line(mod2_checkpoint, capsys, args, message):
    import re

    code = main(["probe", str(mod2_checkpoint), "--seeds", "1", *args])
    err = capsys.readouterr().err
    assert code in (1, 2) and re.search(message, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    if not message.startswith("kernel_size"):
        assert code == 2


def test_probe_failure_writes_no_figures(mod2_checkpoint, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["probe", str(mod2_checkpoint), "--layers", "nope", "--out", str(out)]) == 2
    assert "--layers: Unknown layer 'nope'" in capsys.readouterr().err
    assert not out.exists()


def test_probe_other_models_need_layers(tmp_path, capsys):
    data = digits_data("digits", seed=0)
    model = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(4, 8)), seed=0)  # predicts 5 classes
    save_checkpoint(tmp_path / "cnn", model, data_spec=data.spec)
    assert main(["probe", str(tmp_path / "cnn")]) == 2
    assert "--layers is required for a DigitCNN checkpoint" in capsys.readouterr().err
    code = main(["probe", str(tmp_path / "cnn"), "--layers", "relu2,fc1", "--kernel-size", "1x8", "--seeds", "1",
                 "--epochs", "20", "--no-untrained", "--format", "json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 0 and set(result["heads"]) == {"label", "output"}


def test_probe_text_says_what_a_selectivity_near_zero_means(mod2_checkpoint, capsys):
    # mod 2 has 4 distinct inputs: random labels per input are as easy to fit as the real targets.
    assert main(["probe", str(mod2_checkpoint), "--seeds", "1", "--no-untrained", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["selectivity"] < 0.05 and "warnings" not in result  # an example split: nothing to warn about
    assert main(["probe", str(mod2_checkpoint), "--seeds", "1", "--no-untrained"]) == 0
    out = capsys.readouterr().out
    assert "verdict: selectivity" in out and "is below 0.05" in out
    assert "lookup table" in out and "says nothing about what the network computes" in out


def test_probe_text_gives_no_lookup_verdict_for_a_selective_probe(mod2_checkpoint):
    from dataclasses import replace

    from mechscope.cli.probe import _text
    from mechscope.models.checkpoint import load_checkpoint
    from mechscope.probes import probe_modular_mlp

    ckpt = load_checkpoint(mod2_checkpoint)
    run = probe_modular_mlp(ckpt.model, ckpt.data(), seeds=(0,), use_untrained=False)
    assert "verdict:" in _text(run)
    assert "verdict:" not in _text(replace(run, report=replace(run.report, selectivity=0.4)))


def test_probe_split_types_warns_when_too_few_types_are_held_out(mod2_checkpoint, capsys):
    args = ["probe", str(mod2_checkpoint), "--seeds", "2", "--split", "types", "--no-untrained"]
    assert main([*args, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["warnings"]) == 2
    assert result["warnings"][0].startswith("only 1 distinct input type(s) were held out")
    assert "fewer than 3 per class" in result["warnings"][1]
    assert set(result) == SPEC_KEYS | {"warnings"}
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "warning: only 1 distinct input type(s) were held out" in out and "below 10" in out

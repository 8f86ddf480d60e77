from __future__ import annotations

import json

import pytest

from mechscope.cli.main import main

SMALL = ["sweep", "modular-mlp", "--moduli", "2,3", "--seeds", "2", "--n-pairs", "300"]


def test_sweep_json_lists_rows_in_grid_order_and_matches_the_files(tmp_path, capsys):
    code = main([*SMALL, "--out", str(tmp_path / "s"), "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["modulus"], r["seed"]) for r in result["rows"]] == [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert result["files"] == [str(tmp_path / "s" / name) for name in ("sweep.csv", "sweep.json", "sweep.png")]
    assert (result["points"], result["workers"]) == (4, 1)
    written = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert written["rows"] == result["rows"] and written["summary"] == result["summary"]
    assert written["grid"] == {"moduli": [2, 3], "seeds": [0, 1], "n_pairs": 300, "operation": "+"}
    csv_lines = (tmp_path / "s" / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("modulus,seed,hidden,epochs,test_accuracy,probe_a,")
    assert len(csv_lines) == 5


def test_sweep_text_prints_the_table_per_modulus(tmp_path, capsys):
    code = main(["sweep", "modular-mlp", "--moduli", "2", "--seeds", "1", "--n-pairs", "300",
                 "--out", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert code == 0
    header, row, footer = out.strip().splitlines()
    assert header.split()[:4] == ["mod", "seeds", "epochs", "model"]
    assert row.split()[:2] == ["2", "1"]
    assert footer.startswith("1 points in ") and "sweep.png" in footer


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--moduli", "1,2"], "--moduli must be comma-separated integers from 2 to 10000, e.g. 2,3,5; got '1,2'"),
        (["--moduli", "two"], "--moduli must be comma-separated integers"),
        (["--moduli", "2,2"], "--moduli names a modulus twice; got '2,2'"),
        (["--seeds", "0"], "Invalid value for '--seeds'"),
        (["--n-pairs", "5"], "Invalid value for '--n-pairs'"),
        (["--operation", "/"], "Invalid value for '--operation'"),
    ],
)
def test_sweep_bad_arguments_exit_2_with_one_line(args, message, tmp_path, capsys):
    code = main(["sweep", "modular-mlp", *args, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_sweep_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code = main([*SMALL, "--out", str(tmp_path / "mine")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("Error: --out: ") and "does not hold a mechscope sweep" in err
    assert len(err.strip().splitlines()) == 1
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_sweep_help_lists_examples(capsys):
    assert main(["sweep", "modular-mlp", "--help"]) == 0
    out = capsys.readouterr().out
    assert "mechscope sweep modular-mlp --moduli 2,3 --seeds 3" in out and "--workers" in out


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_on_two_ray_workers_writes_the_same_files(tmp_path, capsys):
    pytest.importorskip("ray")
    assert main([*SMALL, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([*SMALL, "--out", str(tmp_path / "ray"), "--workers", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == 2
    for name in ("sweep.csv", "sweep.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()

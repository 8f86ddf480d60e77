from __future__ import annotations

import json

import pytest

from mechscope.cli.main import main
from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint


def _checkpoint(tmp_path):
    data = modular_data(2, n_train=40, n_test=40)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    return save_checkpoint(tmp_path / "mod2", model, data_spec=data.spec, metrics={"test_accuracy": 0.5})


def test_report_cli_prints_the_index_and_sections(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path)
    code = main(["report", str(ckpt), "--out", str(tmp_path / "out"), "--quick", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["index"] == str(tmp_path / "out" / "index.html")
    assert (tmp_path / "out" / "index.html").is_file()
    shown = {s["key"] for s in result["sections"] if s["page"]}
    assert {"units", "probes", "fourier"} <= shown
    assert all(s["reason"] for s in result["sections"] if not s["page"])


def _failing(monkeypatch, keys):
    from mechscope.report import SECTIONS

    def boom(self, ctx):
        raise RuntimeError("boom")

    for section in SECTIONS:
        if section.key in keys:
            monkeypatch.setattr(section, "applies", boom)


def test_report_cli_lists_a_failed_section_and_exits_0(tmp_path, capsys, monkeypatch):
    _failing(monkeypatch, {"probes"})
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--quick"])
    out = capsys.readouterr()
    assert code == 0
    assert "Probes by layer: not shown (failed: RuntimeError: boom)" in out.out
    assert "units" in out.out and out.err == ""


def test_report_cli_exits_1_when_every_section_failed(tmp_path, capsys, monkeypatch):
    from mechscope.report import SECTIONS

    _failing(monkeypatch, {section.key for section in SECTIONS})
    code = main(["report", str(_checkpoint(tmp_path)), "--out", str(tmp_path / "out"), "--format", "json"])
    out = capsys.readouterr()
    assert code == 1
    assert all(s["error"] == "RuntimeError: boom" for s in json.loads(out.out)["sections"])
    assert f"no section of the report could be built ({len(SECTIONS)} failed)" in out.err


def test_report_cli_missing_checkpoint_exits_1(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 1
    assert "No checkpoint folder" in capsys.readouterr().err


def test_serve_cli_serves_for_a_bounded_time(tmp_path, capsys):
    (tmp_path / "index.html").write_text("<html></html>")
    assert main(["serve", str(tmp_path), "--port", "0", "--seconds", "0.3"]) == 0
    assert "http://127.0.0.1:" in capsys.readouterr().out


def test_serve_cli_refuses_a_folder_without_index(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "no index.html" in capsys.readouterr().err


@pytest.mark.slow
def test_report_cli_on_ray_workers_is_the_same_report(tmp_path, capsys):
    pytest.importorskip("ray")
    data = modular_data(2, n_train=400, n_test=400)  # 800 inputs: the unit pages' search runs as shards
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    ckpt = save_checkpoint(tmp_path / "mod2", model, data_spec=data.spec)
    runs = []
    for name, extra in (("one", []), ("ray", ["--workers", "2"])):
        code = main(["report", str(ckpt), "--out", str(tmp_path / name), "--quick", "--format", "json", *extra])
        assert code == 0
        runs.append(json.loads(capsys.readouterr().out)["sections"])
    assert runs[0] == runs[1]

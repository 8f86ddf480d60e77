from __future__ import annotations

import json

import pytest

from mechscope import tour
from mechscope.cli.main import main


def _fake_steps(calls: list[str], fail_on: str | None = None):
    def make(name: str):
        def run(folder):
            calls.append(name)
            if name == fail_on:
                raise RuntimeError("interrupted")
            (folder / "artifact.txt").write_text(name)
            return {"value": float(len(calls))}

        return tour.TourStep(name, run)

    return lambda quick=False: [make("a"), make("b"), make("c")]


def test_tour_reuses_finished_steps_unless_forced(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(tour, "tour_steps", _fake_steps(calls))
    first = tour.run_tour(tmp_path)
    second = tour.run_tour(tmp_path)
    assert calls == ["a", "b", "c"]
    assert [s["reused"] for s in second["steps"]] == [True, True, True]
    assert second["steps"][1]["metrics"] == first["steps"][1]["metrics"]
    tour.run_tour(tmp_path, force=True)
    assert calls == ["a", "b", "c", "a", "b", "c"]


def test_tour_resumes_after_interruption(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(tour, "tour_steps", _fake_steps(calls, fail_on="b"))
    with pytest.raises(RuntimeError, match="interrupted"):
        tour.run_tour(tmp_path)
    assert (tmp_path / "a" / "step.json").is_file()
    assert not (tmp_path / "b" / "step.json").exists()
    monkeypatch.setattr(tour, "tour_steps", _fake_steps(calls))
    summary = tour.run_tour(tmp_path)
    assert calls == ["a", "b", "b", "c"]
    assert [s["reused"] for s in summary["steps"]] == [True, False, False]


def test_tour_refuses_file_as_out(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["tour", "--out", str(target)]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_tour_quick_trains_seed_targets(tmp_path, capsys):
    code = main(["tour", "--out", str(tmp_path), "--quick", "--format", "json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    steps = {s["name"]: s["metrics"] for s in summary["steps"]}
    assert steps["modular-mlp-mod2"]["test_accuracy"] == 1.0
    assert steps["digit-cnn-digits"]["test_accuracy"] >= 0.97
    assert steps["tiny-relu-sum"]["test_mse"] < 1e-3
    assert (tmp_path / "tour.json").is_file()
    assert (tmp_path / "modular-mlp-mod2" / "checkpoint" / "model.safetensors").is_file()

from __future__ import annotations

import json

import pytest

from mechscope.recipes import tour
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
    assert main(["tour", "--out", str(target)]) == 2
    assert target.read_text() == "x"
    assert "existing file that does not hold a mechscope tour" in capsys.readouterr().err


def test_tour_steps_pair_every_target_with_its_report():
    for quick, report, n_models in ((True, "report-quick", 6), (False, "report", 7)):
        steps = tour.tour_steps(quick=quick)
        trained, reports = steps[0::2], steps[1::2]
        assert len(trained) == len(reports) == n_models
        assert [s.name for s in reports] == [f"{t.name}/{report}" for t in trained]
        assert all(s.is_report for s in reports) and not any(s.is_report for s in trained)
    quick = {s.name for s in tour.tour_steps(quick=True)}
    full = {s.name for s in tour.tour_steps(quick=False)}
    assert {"modular-mlp-mod2", "tiny-relu-sum", "tiny-relu-weighted", "tiny-relu-product"} <= quick & full
    assert {"digit-cnn-gap-mnist5k", "grokking-mlp-p59", "grokking-transformer-p59"} <= full - quick
    assert {"digit-cnn-digits", "grokking-mlp-p31"} <= quick - full


def test_tour_index_links_every_report_step(tmp_path, monkeypatch):
    def report(folder):
        (folder / "index.html").write_text("<html></html>")
        (folder / "report.json").write_text(json.dumps({"name": f"model <{folder.parent.name}>", "sections": []}))
        return {}

    steps = [tour.TourStep("m1", lambda folder: {}), tour.TourStep("m1/report", report, is_report=True),
             tour.TourStep("m2", lambda folder: {}), tour.TourStep("m2/report", report, is_report=True)]
    monkeypatch.setattr(tour, "tour_steps", lambda quick=False: steps)
    summary = tour.run_tour(tmp_path)
    text = (tmp_path / "index.html").read_text()
    assert summary["index"] == str(tmp_path / "index.html")
    assert 'href="m1/report/index.html"' in text and 'href="m2/report/index.html"' in text
    assert "model &lt;m1&gt;" in text


@pytest.mark.slow
def test_tour_quick_trains_analyses_and_reports_every_target(tmp_path, capsys):
    code = main(["tour", "--out", str(tmp_path), "--quick", "--format", "json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    steps = {s["name"]: s["metrics"] for s in summary["steps"]}
    assert steps["modular-mlp-mod2"]["test_accuracy"] == 1.0
    assert steps["digit-cnn-digits"]["test_accuracy"] >= 0.95
    assert steps["tiny-relu-sum"]["test_mse"] < 1e-3
    assert steps["grokking-mlp-p31"]["test_accuracy"] >= 0.99
    assert (tmp_path / "tour.json").is_file()
    assert (tmp_path / "modular-mlp-mod2" / "checkpoint" / "model.safetensors").is_file()
    index = (tmp_path / "index.html").read_text()
    for name in steps:
        if name.endswith("/report-quick"):
            assert (tmp_path / name / "index.html").is_file()
            assert f'href="{name}/index.html"' in index
    assert "attribution" in steps["digit-cnn-digits/report-quick"]["sections"]
    assert "formula" in steps["tiny-relu-product/report-quick"]["sections"]
    assert "fourier" in steps["grokking-mlp-p31/report-quick"]["sections"]
    again = tour.run_tour(tmp_path, quick=True)
    assert all(s["reused"] for s in again["steps"])

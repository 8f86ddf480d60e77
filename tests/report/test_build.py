from __future__ import annotations

import json

import pytest

from mechscope.errors import ConfigError, OutputError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint
from mechscope.data import modular_data
from mechscope.report import REPORT_FILE, build_report
from tests.report.conftest import TINY


def _summary(folder):
    return json.loads((folder / REPORT_FILE).read_text())


def _sections(folder):
    return {s["key"]: s for s in _summary(folder)["sections"]}


def test_build_report_shows_sections_that_apply_to_a_conv_classifier(site):
    sections = _sections(site / "evil" / "report")
    assert {k for k, s in sections.items() if s["page"]} == {"units", "depth", "circuits", "attribution", "probes"}
    assert "regression" in sections["formula"]["reason"]
    assert "(a + b) mod p" in sections["fourier"]["reason"]


def test_build_report_shows_fourier_and_probes_for_a_modular_mlp(site):
    sections = _sections(site / "mod2" / "report")
    assert sections["fourier"]["page"] == "fourier.html" and sections["probes"]["page"] == "probes.html"
    assert "not images" in sections["attribution"]["reason"]
    assert "conv" in sections["circuits"]["reason"]


def test_build_report_reads_the_formula_of_a_function_learner(site):
    sections = _sections(site / "sum" / "report")
    assert sections["formula"]["page"] == "formula.html"
    assert sections["formula"]["n_regions"] >= 1
    assert "classification" not in sections["formula"]["page"]


def test_build_report_writes_a_page_for_every_unit_shown(site):
    root = site / "mod2" / "report"
    units = _summary(root)
    layers = [s for s in units["sections"] if s["key"] == "units"][0]["layers"]
    assert layers == ["hidden.0", "hidden.1"]
    for layer in layers:
        assert sorted(p.name for p in (root / "layers" / layer).glob("unit-*.html")) == [
            f"unit-{u}.html" for u in range(3)
        ]


def test_build_report_links_conv_units_both_ways(site):
    root = site / "evil" / "report"
    page = (root / "layers" / "relu2" / "unit-0.html").read_text()
    assert "Inbound" in page and "unit-" in page and "logit of class" in page


def test_build_report_from_a_checkpoint_uses_its_data_and_history(tmp_path):
    data = modular_data(2, n_train=40, n_test=40)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    ckpt = save_checkpoint(tmp_path / "mod2" / "checkpoint", model, data_spec=data.spec,
                           metrics={"test_accuracy": 0.5}, history=[{"epoch": 1.0, "train_loss": 0.7}])
    index = build_report(ckpt, tmp_path / "out", config=TINY, progress=False)
    summary = _summary(index.parent)
    assert summary["name"] == "mod2" and summary["metrics"] == {"test_accuracy": 0.5}
    assert (index.parent / "fig" / "training.png").is_file()
    assert "Training curves" in index.read_text()


def test_build_report_refuses_a_file_as_out(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    with pytest.raises(OutputError, match="existing file that does not hold a mechscope report"):
        build_report(model, target, config=TINY, progress=False)
    assert target.read_text() == "x"


def test_build_report_without_data_says_why_sections_are_missing(tmp_path):
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    index = build_report(model, tmp_path / "out", config=TINY, progress=False)
    sections = _sections(index.parent)
    assert all(s["page"] is None and "data" in s["reason"] for s in sections.values())
    assert "Not shown" in index.read_text()


def test_build_report_replaces_an_earlier_report_without_stale_pages(tmp_path):
    wide = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=4), 0)
    narrow = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    data = modular_data(2, n_train=40, n_test=40)
    build_report(wide, tmp_path / "out", data=data, config=TINY, progress=False)
    assert (tmp_path / "out" / "layers" / "hidden.0" / "unit-3.html").is_file()
    build_report(narrow, tmp_path / "out", data=data, config=TINY, progress=False)
    assert not (tmp_path / "out" / "layers" / "hidden.0" / "unit-3.html").exists()
    assert (tmp_path / "out" / "layers" / "hidden.0" / "unit-1.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left beside it


def test_build_report_refuses_a_folder_it_did_not_write(tmp_path):
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="does not hold a mechscope report"):
        build_report(model, tmp_path / "out", config=TINY, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt", "sub"]
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"

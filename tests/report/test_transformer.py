"""A transformer's report: attention, patching and logit-lens pages with the right numbers; other models skip them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechscope.models.grokking_train import GrokkingTrainConfig
from mechscope.models.grokking_transformer import GrokkingTransformerConfig
from mechscope.recipes.grokking import train_grokking_transformer
from mechscope.report import build_report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("transformer-report")
    train_grokking_transformer(root / "ckpt", model_config=GrokkingTransformerConfig(modulus=11, d_model=16, n_heads=2,
                                                                                     d_mlp=32),
                               train_config=GrokkingTrainConfig(steps=40, lr=3e-3), progress=False)
    index = build_report(root / "ckpt", root / "site", quick=True, progress=False)
    return {"root": index.parent, **json.loads((index.parent / "report.json").read_text())}


def _section(report: dict, key: str) -> dict:
    return next(s for s in report["sections"] if s["key"] == key)


def test_transformer_pages_are_built(report: dict) -> None:
    for key in ("attention", "patching", "lens", "fourier"):
        section = _section(report, key)
        assert section["page"] and not section["error"], section
        assert (report["root"] / section["page"]).is_file()


def test_patching_numbers_follow_the_architecture(report: dict) -> None:
    positions = _section(report, "patching")["positions"]
    assert positions["layers"] == ["blocks.0.resid_pre", "blocks.0.resid_mid", "blocks.0.resid_post"]
    expected = [[0, 1, 0], [0, 0, 1], [0, 0, 1]]
    assert positions["values"] == [[pytest.approx(v, abs=1e-5) for v in row] for row in expected]
    heads = _section(report, "patching")["heads"]
    assert heads["layers"] == ["blocks.0.attn.z"] and heads["n_cells"] == [2]


def test_attention_rows_are_distributions(report: dict) -> None:
    last = _section(report, "attention")["last_query"]["blocks.0.attn.pattern"]
    assert len(last) == 2 and all(sum(row) == pytest.approx(1.0, abs=1e-6) for row in last)


def test_lens_reads_every_block_and_attribution(report: dict) -> None:
    lens = _section(report, "lens")
    assert lens["layers"] == ["blocks.0.resid_pre", "blocks.0.resid_post"]
    assert set(lens["attribution"]) == {"blocks.0.resid_pre", "blocks.0.attn.heads.0", "blocks.0.attn.heads.1",
                                        "blocks.0.mlp", "bias"}


def test_a_cnn_report_says_why_they_do_not_apply(tmp_path: Path) -> None:
    from tests.zoo import TinyResNet

    index = build_report(TinyResNet(), tmp_path / "site", quick=True, progress=False)
    sections = {s["key"]: s for s in json.loads((index.parent / "report.json").read_text())["sections"]}
    for key in ("attention", "patching", "lens"):
        assert sections[key]["page"] is None and sections[key]["reason"] and not sections[key]["error"]

from __future__ import annotations

import dataclasses
import html
import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from mechscope.errors import ConfigError, OutputError
from mechscope.limits import format_size
from mechscope.models import ModularMLP, ModularMLPConfig, TinyReLU, TinyReLUConfig, build_seeded
from mechscope.models.checkpoint import save_checkpoint
from mechscope.data import function_data, modular_data
from mechscope.plots._style import plt
from mechscope.report import build_report
from mechscope.report.build import REPORT_FILE
from mechscope.report.site import SLUG_MAX, slugify
from tests.report.conftest import TINY

LONG_KEY = "a_very_long_block_name_" * 5  # 115 characters: layer names of 124


class LongNames(nn.Module):
    """Linear -> ReLU -> Linear -> ReLU inside a ModuleDict under a long key, then a Linear head; seeded."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleDict({LONG_KEY: nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU())})
        self.head = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks[LONG_KEY](x))


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
    root = site / "sum" / "report"
    formula = _sections(root)["formula"]
    assert formula["page"] == "formula.html" and formula["reason"] is None
    # The fixture's untrained TinyReLU: its one ReLU unit is active on every test point, so one region covers all.
    (region,) = formula["regions"]
    assert region["coverage"] == 1.0 and region["n_points"] == formula["n_points"] == 64
    # The formula the report states reproduces the network on the test data (an oracle, not the reader's word).
    data = function_data("sum", n_train=64, n_test=64)
    model = build_seeded(TinyReLU, TinyReLUConfig(), 0).eval()
    stated = data.x_test.double() @ torch.tensor(region["coefficients"], dtype=torch.float64) + region["intercept"]
    with torch.no_grad():
        network = model(data.x_test).double().reshape(-1)
    assert torch.allclose(stated, network, atol=1e-4)
    page = (root / "formula.html").read_text()
    assert html.escape(formula["formula"]) in page and 'src="fig/formula.png"' in page
    assert (root / "fig" / "formula.png").is_file()


def test_build_report_writes_a_page_for_every_unit_shown(site):
    root = site / "mod2" / "report"
    units = _summary(root)
    layers = [s for s in units["sections"] if s["key"] == "units"][0]["layers"]
    assert layers == ["hidden.0", "hidden.1"]
    for layer in layers:
        assert sorted(p.name for p in (root / "layers" / layer).glob("unit-*.html")) == [
            f"unit-{u}.html" for u in range(3)
        ]


def test_build_report_states_the_size_of_the_site(site):
    for name in ("evil", "mod2", "sum"):
        root = site / name / "report"
        files = [p for p in root.rglob("*") if p.is_file() and p.name != REPORT_FILE]
        stated = _summary(root)["site"]
        assert stated == {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
        row = f'<th scope="row">site</th><td>{stated["files"]:,} files, {format_size(stated["bytes"])}</td>'
        assert row in (root / "index.html").read_text()


def test_build_report_links_conv_units_both_ways(site):
    root = site / "evil" / "report"
    page = (root / "layers" / "relu2" / "unit-0.html").read_text()
    assert "Inbound" in page and "unit-" in page and "logit of class" in page


def test_build_report_from_a_checkpoint_uses_its_data_and_history(tmp_path):
    data = modular_data(2, n_train=40, n_test=40)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0)
    ckpt = save_checkpoint(tmp_path / "mod2" / "checkpoint", model, data_spec=data.spec,
                           metrics={"test_accuracy": 0.5}, history=[{"epoch": 1.0, "train_loss": 0.7}])
    open_figures = set(plt.get_fignums())
    index = build_report(ckpt, tmp_path / "out", config=TINY, progress=False)
    assert set(plt.get_fignums()) == open_figures  # every figure drawn was saved and closed
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


def test_build_report_shows_units_of_layers_with_names_over_100_characters(tmp_path):
    model = LongNames().eval()
    index = build_report(model, tmp_path / "out", data=function_data("sum", n_train=64, n_test=64), config=TINY,
                         progress=False)
    units = _sections(index.parent)["units"]
    assert units["page"] is not None and units["reason"] is None
    assert len(units["layers"]) == 2 and all(name.startswith(f"blocks.{LONG_KEY}") for name in units["layers"])
    folders = {name: index.parent / "layers" / slugify(name) for name in units["layers"]}
    assert sorted(f.name for f in (index.parent / "layers").iterdir()) == sorted(f.name for f in folders.values())
    for folder, n_units in zip(folders.values(), (6, 4)):  # the first ReLU, then the block's output
        assert len(folder.name) <= SLUG_MAX and folder.name.startswith("blocks.a_very_long_block_name_")
        assert (folder / "index.html").is_file()
        assert sorted(p.name for p in folder.glob("unit-*.html")) == sorted(f"unit-{u}.html" for u in range(n_units))
    assert units["page"] == f"layers/{folders[units['layers'][0]].name}/index.html"


def test_build_report_probes_a_modular_mlp_with_one_hidden_layer(tmp_path):
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=3), 0).eval()
    config = dataclasses.replace(TINY, article_probe=True)
    index = build_report(model, tmp_path / "out", data=modular_data(2, n_train=64, n_test=64), config=config,
                         progress=False)
    probes = _sections(index.parent)["probes"]
    assert probes["page"] == "probes.html" and probes["reason"] is None
    rows = probes["by_layer"]["rows"]
    assert {r["layer"] for r in rows} == {"hidden.0"} and {r["label"] for r in rows} == {"a", "b", "output"}
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    article = probes["article_probe"]  # the convolutional probe over a 1 x 3 activation image
    assert all(0.0 <= v <= 1.0 for v in article["heads"].values()) and not math.isnan(article["all_heads_accuracy"])
    assert any("kernels of 1 x 2 instead of the article's 2 x 2" in n for n in article["seeds"]["notes"])
    page = (index.parent / "probes.html").read_text()
    assert "The article&#x27;s convolutional probe" in page
    assert "kernels of 1 x 2" in page
    assert (index.parent / "fig" / "article-probe" / "kernels.png").is_file()


class _RecordingBar:
    """Stands in for tqdm: records its total, its flags and how far it got."""

    bars: list[_RecordingBar] = []

    def __init__(self, iterable=None, **kwargs) -> None:
        self.iterable, self.kwargs, self.n = iterable, kwargs, 0
        _RecordingBar.bars.append(self)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1

    def __enter__(self) -> _RecordingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, *args: object, **kwargs: object) -> None:
        return None

    def close(self) -> None:
        return None


def test_build_report_shows_progress_over_the_unit_pages(tmp_path, monkeypatch):
    import mechscope.report.sections.units as units_section

    _RecordingBar.bars = []
    monkeypatch.setattr(units_section, "tqdm", _RecordingBar)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=4, hidden=3), 0).eval()
    for progress in (True, False):
        build_report(model, tmp_path / f"out-{progress}", data=modular_data(2, n_train=40, n_test=40), config=TINY,
                     progress=progress)
    on, off = _RecordingBar.bars
    assert on.kwargs["total"] == on.n == 2 * (1 + 3)  # two layers: a layer page and 3 unit pages each
    assert on.kwargs["disable"] is None and off.kwargs["disable"] is True  # None: only on a terminal


_KILL_REPORT = """
import os, sys
from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.report import build_report
from tests.report.conftest import TINY
kill_at, calls = int(sys.argv[2]), [0]
real = os.replace
def replace(src, dst):
    calls[0] += 1
    if calls[0] == kill_at:
        os._exit(9)  # no cleanup runs, as with SIGKILL
    real(src, dst)
os.replace = replace
model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=int(sys.argv[3])), 0)
build_report(model, sys.argv[1], data=modular_data(2, n_train=40, n_test=40), config=TINY, progress=False)
print(calls[0])
"""


@pytest.mark.slow  # five whole report builds, each in its own process
def test_build_report_killed_at_any_rename_leaves_the_old_or_the_new_report(tmp_path):
    import subprocess

    from mechscope.atomic import recover
    from mechscope.report.build import is_report
    from tests.forking import forked_python

    out = tmp_path / "out"

    def units() -> int:
        return len(list((out / "layers").rglob("unit-*.html")))

    # Each build is a separate process, forked from one that has imported the report already.
    with forked_python("tests.report.conftest", "torch._dynamo", cwd=Path(__file__).parents[2]) as python:

        def build(kill_at: int, hidden: int) -> subprocess.CompletedProcess[str]:
            return python.run(_KILL_REPORT, str(out), str(kill_at), str(hidden))

        first = build(0, 4)
        assert first.returncode == 0, first.stderr
        total = int(first.stdout)  # renames of one whole build: every page and picture, then the swap's three
        shown = units()
        for kill_at in (1, total - 2, total - 1, total):
            hidden = 2 if shown != 2 else 3
            assert build(kill_at, hidden).returncode == 9
            recover(out, owned=is_report)  # what the next build (or a reader) does first
            assert is_report(out) and (out / "index.html").is_file(), kill_at
            if kill_at == total:  # killed after the new report was renamed into place: the new one stands
                assert units() == hidden != shown
            else:  # killed before: the old one stands (put back by `recover` when caught between the renames)
                assert units() == shown
            shown = units()
            assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], kill_at  # no leftover of the kill


def _raise(error: BaseException):
    def analyse(self, ctx, deps):
        raise error
    return analyse


def _with_analyse(monkeypatch, key: str, analyse) -> None:
    from mechscope.report import SECTIONS

    (section,) = [s for s in SECTIONS if s.key == key]
    monkeypatch.setattr(section, "analyse", analyse)


def test_build_report_records_a_failed_section_and_builds_the_rest(tmp_path, monkeypatch):
    from tests.report.conftest import EvilNet, evil_data

    _with_analyse(monkeypatch, "attribution", _raise(RuntimeError("boom\nsecond line")))
    open_figures = set(plt.get_fignums())
    with pytest.warns(RuntimeWarning, match="report section 'attribution' .* failed: RuntimeError: boom second line"):
        index = build_report(EvilNet().eval(), tmp_path / "out", data=evil_data(), config=TINY, progress=False)
    assert set(plt.get_fignums()) == open_figures  # the sections that drew closed their figures
    sections = _sections(tmp_path / "out")
    broken = sections["attribution"]
    assert broken["page"] is None and broken["error"] == "RuntimeError: boom second line"
    assert broken["reason"] == "failed: RuntimeError: boom second line"
    assert sections["units"]["page"] and sections["depth"]["page"] and sections["circuits"]["page"]
    assert all(s["error"] is None for k, s in sections.items() if k != "attribution")
    overview = index.read_text()
    assert "Failed: " in overview and "RuntimeError: boom second line" in overview and 'class="card failed"' in overview


def test_build_report_lets_keyboard_interrupt_through(tmp_path, monkeypatch):
    from tests.report.conftest import EvilNet, evil_data

    _with_analyse(monkeypatch, "depth", _raise(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_report(EvilNet().eval(), tmp_path / "out", data=evil_data(), config=TINY, progress=False)
    assert not (tmp_path / "out" / REPORT_FILE).exists()


@pytest.mark.parametrize("make", [
    # The three conv and attention models have many layers, each with its own pages: seconds each.
    pytest.param("resnet", marks=pytest.mark.slow), "dictnet", "token_gru", pytest.param("vit", marks=pytest.mark.slow),
    pytest.param("mobilenet", marks=pytest.mark.slow), "gpt2",
])
def test_build_report_builds_for_models_written_outside_mechscope(make, tmp_path):
    from tests import zoo

    output = (lambda o: o.logits[:, -1]) if make == "gpt2" else None  # next-token logits of the last position
    model, data = {
        "resnet": lambda: (zoo.TinyResNet(width=4), zoo.image_bundle((1, 8, 8), 4, n_train=24, n_test=12)),
        "dictnet": lambda: (zoo.DictNet(), zoo.image_bundle((1, 8, 8), 3)),
        "token_gru": lambda: (zoo.TokenGRU(), zoo.token_bundle(11, 6, 3)),
        "vit": lambda: (zoo.tiny_vit(), zoo.image_bundle((3, 8, 8), 3, n_train=24, n_test=12)),
        "mobilenet": lambda: (zoo.TinyMobileNet(), zoo.image_bundle((3, 8, 8), 3, n_train=24, n_test=12)),
        "gpt2": lambda: (zoo.tiny_gpt2(), zoo.token_bundle(23, 6, 23)),
    }[make]()
    config = dataclasses.replace(TINY, max_units=2, featurevis_steps=1, probe_inputs=24, output=output)
    build_report(model, tmp_path / "out", data=data, config=config, progress=False)
    sections = _sections(tmp_path / "out")
    assert [k for k, s in sections.items() if s["error"]] == []
    assert all(s["reason"] for s in sections.values() if not s["page"])
    assert sections["probes"]["page"]
    if make not in ("token_gru", "gpt2"):
        assert sections["units"]["page"] and sections["attribution"]["page"]
    if make == "gpt2":  # units are the 64 features of each MLP activation, not its 6 token positions
        assert sections["units"]["page"]
        assert (tmp_path / "out" / "layers" / "transformer.h.1.mlp.act" / "unit-1.html").is_file()
        assert "of 64 units" in (tmp_path / "out" / "index.html").read_text()


@pytest.mark.parametrize("make", ["dictnet", "tuplenet"])
def test_build_report_explains_the_chosen_output_at_the_stated_default_layer(make, tmp_path):
    from dataclasses import replace

    from tests import zoo

    model, output, layer, shape = {
        "dictnet": (zoo.DictNet(), None, "act", (1, 8, 8)),
        "tuplenet": (zoo.TupleNet(), 0, "act", (1, 8, 8)),
    }[make]
    data = zoo.image_bundle(shape, 3)
    build_report(model, tmp_path / "out", data=data, config=replace(TINY, output=output), progress=False)
    summary = _summary(tmp_path / "out")
    sections = {s["key"]: s for s in summary["sections"]}
    assert summary["settings"]["output"] == ("auto" if output is None else "0")
    attribution = sections["attribution"]
    assert attribution["page"] and attribution["layer"] == layer and "cam" not in attribution["skipped"]
    assert f"of {layer}, the default layer" in (tmp_path / "out" / attribution["page"]).read_text()
    # 5 channels are too few for 3 detectors and 3 random ones per class; the reason names the layer.
    assert sections["circuits"]["page"] is None and f"channels in '{layer}'" in sections["circuits"]["reason"]


def test_build_report_states_the_default_layer_of_attribution_and_circuits(site):
    sections = _sections(site / "evil" / "report")
    assert sections["attribution"]["layer"] == sections["circuits"]["layer"] == "relu2"
    page = (site / "evil" / "report" / sections["circuits"]["page"]).read_text()
    assert "Detector layer: relu2, the default layer" in page
    page = (site / "evil" / "report" / sections["attribution"]["page"]).read_text()
    assert "of relu2, the default layer" in page


@pytest.mark.slow
def test_report_on_several_workers_is_the_same_report(tmp_path: Path) -> None:
    """The unit pages' dataset examples run as shards when the engine has workers; nothing else changes."""
    from mechscope.data import DataBundle
    from mechscope.report import ReportConfig, build_report
    from tests.test_engine import ShardingEngine
    from tests.zoo import TinyResNet

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(700, 1, 16, 16, generator=g), torch.arange(700) % 4
    data = DataBundle.from_tensors(x, y, test_fraction=0.5, seed=0)
    config = ReportConfig.quick(layers=("layer1.0.relu:1",))
    engine = ShardingEngine(3)
    one = build_report(TinyResNet(), tmp_path / "one", data=data, config=config, progress=False)
    many = build_report(TinyResNet(), tmp_path / "many", data=data, config=config, progress=False, engine=engine)
    assert engine.calls > 1

    def sections(index: Path) -> list[dict]:
        return json.loads((index.parent / "report.json").read_text())["sections"]

    assert sections(one) == sections(many)
    pages = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*.html"))
    assert pages and pages == sorted(p.relative_to(many.parent) for p in many.parent.rglob("*.html"))
    unit = next(p for p in pages if "units" in p.parts or "layers" in p.parts)
    assert (one.parent / unit).read_text() == (many.parent / unit).read_text()


def test_a_report_resumes_from_its_finished_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renders, ablations and example shards are tasks kept in the cache: an interrupted build resumes from them."""
    import mechscope.report.units as report_units
    from mechscope.cache import TaskCache
    from mechscope.data import DataBundle
    from mechscope.report import build_report
    from mechscope.report.sections.depth import DepthSection
    from mechscope.report.sections.units import UnitsSection
    from tests.test_engine import ShardingEngine
    from tests.zoo import TinyResNet

    monkeypatch.setattr(report_units, "UNITS_PER_TASK", 3)  # 8 units per layer: 3 tasks per layer and analysis
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(160, 1, 16, 16, generator=g), torch.arange(160) % 4
    data = DataBundle.from_tensors(x, y, test_fraction=0.5, seed=0)
    config = dataclasses.replace(TINY, layers=("layer1.0.relu:1", "layer2.1.relu:1"))

    def build(name: str, **kwargs: object) -> dict:
        index = build_report(TinyResNet(), tmp_path / name, data=data, config=config, progress=False,
                             sections=(DepthSection, UnitsSection), **kwargs)
        return json.loads((index.parent / "report.json").read_text())

    one = build("one")
    assert one["tasks"] is None
    cache = TaskCache(tmp_path / "cache")
    first = build("first", engine=ShardingEngine(2), cache=cache)
    ran = first["tasks"]["run"]
    assert first["tasks"]["cached"] == 0 and ran >= 2 * 3 * 2  # renders and ablations of 2 layers, 3 chunks each
    assert first["sections"] == one["sections"]
    entries = sorted((tmp_path / "cache").glob("*/*.json"))
    assert len(entries) == ran
    again = build("again", cache=TaskCache(tmp_path / "cache"))
    assert again["tasks"] == {"cached": ran, "run": 0} and again["sections"] == one["sections"]
    for entry in entries[::2]:  # as if the first build had been killed before these tasks finished
        entry.unlink()
    resumed = build("resumed", engine=ShardingEngine(2), cache=TaskCache(tmp_path / "cache"))
    lost = len(entries[::2])
    assert resumed["tasks"] == {"cached": ran - lost, "run": lost} and resumed["sections"] == one["sections"]
    pages = {p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("unit-*.html")}
    assert len(pages) == 16
    for rel in pages:
        assert (tmp_path / "one" / rel).read_text() == (tmp_path / "resumed" / rel).read_text(), rel

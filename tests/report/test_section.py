"""The section family: dependency order, typed results passed along, skips and failures (tiny fake sections)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from torch import nn

from mechscope.data import modular_data
from mechscope.errors import ConfigError
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.report import SECTIONS, Deps, NotApplicable, Rendered, ReportContext, ReportSection, build_report
from mechscope.report.build import REPORT_FILE, section_order
from mechscope.report.html import tag
from mechscope.report.section import section_crumbs
from mechscope.report.sections import DepthSection, ProbesSection, UnitsSection
from mechscope.report.sections.units import UnitsResult
from tests.report.conftest import TINY


@dataclass(frozen=True)
class Count:
    """A fake section's result: a number, and a field report.json leaves out."""

    json_skip: ClassVar[frozenset[str]] = frozenset({"note"})

    value: int
    note: str = "not in report.json"


class _Fake(ReportSection[Count]):
    """Writes a one-line page; records what it received."""

    seen: ClassVar[dict[str, Any]] = {}

    def analyse(self, ctx: ReportContext, deps: Deps) -> Count:
        return Count(1)

    def render(self, ctx: ReportContext, result: Count) -> Rendered:
        page = ctx.site.rel(f"{self.key}.html")
        ctx.site.write_page(page, self.title, [tag("p", f"value {result.value}")],
                            crumbs=section_crumbs(ctx, self.title))
        return Rendered(page, tag("p", f"{self.title}: {result.value}"))


class Source(_Fake):
    key, title = "source", "Source"


class Sink(_Fake):
    key, title = "sink", "Sink"
    needs = (Source,)

    def analyse(self, ctx: ReportContext, deps: Deps) -> Count:
        upstream = deps.get(Source)
        _Fake.seen["sink"] = upstream
        return Count(1 if upstream is None else upstream.value + 1)


class Lonely(_Fake):
    key, title = "lonely", "Lonely"


class Broken(_Fake):
    key, title = "broken", "Broken"

    def analyse(self, ctx: ReportContext, deps: Deps) -> Count:
        raise RuntimeError("analysis blew up")


class NeedsBroken(_Fake):
    key, title = "needs-broken", "Needs broken"
    needs = (Broken,)

    def analyse(self, ctx: ReportContext, deps: Deps) -> Count:
        _Fake.seen["needs-broken"] = deps.get(Broken)
        return Count(0)


class NotHere(_Fake):
    key, title = "not-here", "Not here"

    def applies(self, ctx: ReportContext) -> str | None:
        return "this <model> has no such thing"


class Refuses(_Fake):
    key, title = "refuses", "Refuses"

    def analyse(self, ctx: ReportContext, deps: Deps) -> Count:
        raise NotApplicable("the model turned out not to fit")


class Sneaky(_Fake):
    key, title = "sneaky", "Sneaky"

    def analyse(self, ctx: ReportContext, deps: Deps) -> Count:
        deps.get(Source)  # not declared in `needs`
        return Count(0)


class NotAnObject(ReportSection[int]):
    key, title = "scalar", "Scalar"

    def analyse(self, ctx: ReportContext, deps: Deps) -> int:
        return 3

    def render(self, ctx: ReportContext, result: int) -> Rendered:
        raise AssertionError("never rendered: the result has no JSON object form")


def _build(tmp_path: Path, sections: tuple[type[ReportSection[Any]], ...]) -> dict[str, Any]:
    _Fake.seen.clear()
    index = build_report(nn.Linear(2, 2), tmp_path / "out", sections=sections, progress=False)
    summary: dict[str, Any] = json.loads((index.parent / REPORT_FILE).read_text())
    return summary


def _sections(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in summary["sections"]}


def test_section_order_puts_a_section_after_the_ones_it_needs() -> None:
    assert section_order((Sink, Lonely, Source)) == (Lonely, Source, Sink)
    assert section_order((Source, Sink, Lonely)) == (Source, Sink, Lonely)  # stable when already in order


def test_section_order_of_the_built_in_sections() -> None:
    assert [s.key for s in section_order(SECTIONS)] == [
        "depth", "units", "circuits", "attribution", "probes", "formula", "fourier", "attention", "patching", "lens",
    ]

    class AfterUnits(_Fake):
        key, title = "after-units", "After units"
        needs = (UnitsSection,)

    order = section_order((AfterUnits, *SECTIONS))
    assert order.index(AfterUnits) > order.index(UnitsSection) > order.index(DepthSection)


def test_section_order_refuses_a_cycle() -> None:
    class First(_Fake):
        key, title = "first", "First"

    class Second(_Fake):
        key, title = "second", "Second"
        needs = (First,)

    First.needs = (Second,)
    with pytest.raises(ConfigError, match="cycle.*'first', 'second'"):
        section_order((Lonely, First, Second))


def test_section_order_refuses_a_missing_dependency_duplicate_keys_and_non_sections() -> None:
    with pytest.raises(ConfigError, match="'sink' needs Source, which is not among the sections"):
        section_order((Sink, Lonely))

    class Twin(_Fake):
        key, title = "source", "Twin"

    with pytest.raises(ConfigError, match="share the key 'source'"):
        section_order((Source, Twin))
    with pytest.raises(ConfigError, match="ReportSection subclasses"):
        section_order((Source, "units"))  # type: ignore[arg-type]

    class Nameless(_Fake):
        pass

    with pytest.raises(ConfigError, match="must set `key` and `title`"):
        section_order((Nameless,))


def test_build_report_refuses_invalid_sections_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not among the sections"):
        build_report(nn.Linear(2, 2), tmp_path / "out", sections=(Sink,), progress=False)
    assert not (tmp_path / "out").exists()


def test_build_report_passes_a_needed_result_typed_and_shows_sections_in_the_given_order(tmp_path: Path) -> None:
    summary = _build(tmp_path, (Sink, Lonely, Source))
    assert next(iter(summary)) == "format"
    assert [s["key"] for s in summary["sections"]] == ["sink", "lonely", "source"]  # shown as given
    assert list(summary["seconds"]) == ["lonely", "source", "sink", "total"]  # run in dependency order
    assert _Fake.seen["sink"] == Count(1)
    sink = _sections(summary)["sink"]
    assert sink == {"key": "sink", "title": "Sink", "page": "sink.html", "reason": None, "error": None, "value": 2}
    assert (tmp_path / "out" / "sink.html").is_file()


def test_build_report_records_a_failed_analyse_and_builds_the_rest(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="report section 'broken' .* failed: RuntimeError: analysis blew up"):
        summary = _build(tmp_path, (Broken, NeedsBroken, Lonely))
    sections = _sections(summary)
    assert sections["broken"]["page"] is None and sections["broken"]["error"] == "RuntimeError: analysis blew up"
    assert sections["broken"]["reason"] == "failed: RuntimeError: analysis blew up"
    assert _Fake.seen["needs-broken"] is None  # a dependency that did not build arrives as None
    assert sections["needs-broken"]["page"] == "needs-broken.html" and sections["lonely"]["page"] == "lonely.html"
    overview = (tmp_path / "out" / "index.html").read_text()
    assert 'class="card failed"' in overview and "RuntimeError: analysis blew up" in overview


def test_build_report_skips_a_section_that_does_not_apply_with_its_reason(tmp_path: Path) -> None:
    sections = _sections(_build(tmp_path, (NotHere, Refuses, Lonely)))
    assert sections["not-here"]["page"] is None and sections["not-here"]["error"] is None
    assert sections["not-here"]["reason"] == "this <model> has no such thing"
    assert sections["refuses"]["reason"] == "the model turned out not to fit"
    overview = (tmp_path / "out" / "index.html").read_text()
    assert "Not shown: this &lt;model&gt; has no such thing" in overview
    assert "Not shown: the model turned out not to fit" in overview
    assert not (tmp_path / "out" / "not-here.html").exists()


def test_build_report_fails_a_section_that_reads_an_undeclared_result_or_has_no_json_object(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning):
        sections = _sections(_build(tmp_path, (Source, Sneaky, NotAnObject)))
    assert sections["sneaky"]["error"].startswith("LookupError: section Sneaky reads Source without declaring it")
    assert sections["scalar"]["error"].startswith("TypeError: the result of NotAnObject must have a JSON object form")
    assert sections["source"]["page"] == "source.html"


def test_probes_receive_the_units_result_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[UnitsResult | None] = []
    analyse = ProbesSection.analyse

    def spy(self: ProbesSection, ctx: ReportContext, deps: Deps) -> Any:
        received.append(deps.get(UnitsSection))
        return analyse(self, ctx, deps)

    monkeypatch.setattr(ProbesSection, "analyse", spy)
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0).eval()
    data = modular_data(2, n_train=40, n_test=40)
    index = build_report(model, tmp_path / "out", data=data, config=TINY, progress=False,
                         sections=(ProbesSection, UnitsSection, DepthSection))
    (units,) = received
    assert isinstance(units, UnitsResult) and list(units.layers) == ["hidden.0"] and units.shown("hidden.0") == 2
    assert units.depth is not None and units.depth.statistics.layers[0].layer == "hidden.0"
    summary = json.loads((index.parent / REPORT_FILE).read_text())
    assert [s["key"] for s in summary["sections"]] == ["probes", "units", "depth"]
    assert _sections(summary)["units"]["layers"] == ["hidden.0"]
    assert 'href="layers/hidden.0/index.html"' in (index.parent / "probes.html").read_text()


def test_probes_without_units_get_none_and_still_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[UnitsResult | None] = []
    analyse = ProbesSection.analyse

    def spy(self: ProbesSection, ctx: ReportContext, deps: Deps) -> Any:
        received.append(deps.get(UnitsSection))
        return analyse(self, ctx, deps)

    monkeypatch.setattr(ProbesSection, "analyse", spy)
    monkeypatch.setattr(UnitsSection, "applies", lambda self, ctx: "switched off for the test")
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=2), 0).eval()
    index = build_report(model, tmp_path / "out", data=modular_data(2, n_train=40, n_test=40), config=TINY,
                         progress=False, sections=(UnitsSection, DepthSection, ProbesSection))
    assert received == [None]
    sections = _sections(json.loads((index.parent / REPORT_FILE).read_text()))
    assert sections["units"]["reason"] == "switched off for the test" and sections["probes"]["page"] == "probes.html"
    assert "layers/hidden.0/index.html" not in (index.parent / "probes.html").read_text()

"""Layer and unit pages: a wide layer is listed over several layer pages, linked both ways (read without a browser)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mechscope.data import modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, build_seeded
from mechscope.report import ReportConfig, build_report
from mechscope.report.build import REPORT_FILE
from mechscope.report.site import slugify
from tests.report.conftest import EVIL_LAYER, TINY, EvilNet, evil_data

PER_PAGE = 3  # UNITS_PER_PAGE while the fixtures build: a layer of 7 units gets 3 layer pages
UNIT = re.compile(r"unit-(\d+)\.html")


@dataclass
class Page:
    """What one HTML page links to: (href, classes of its enclosing elements, link text), and its images."""

    links: list[tuple[str, frozenset[str], str]] = field(default_factory=list)
    images: list[dict[str, str | None]] = field(default_factory=list)
    current: list[str] = field(default_factory=list)  # text of elements marked aria-current

    def hrefs(self, where: str) -> list[str]:
        """The hrefs inside an element of class `where`."""
        return [href for href, classes, _ in self.links if where in classes]

    def units(self, where: str) -> list[int]:
        """Units of the same layer linked inside an element of class `where`."""
        return [int(m.group(1)) for href in self.hrefs(where) if (m := UNIT.fullmatch(href))]


class _Reader(HTMLParser):
    _VOID = {"img", "meta", "link", "br", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self.stack: list[tuple[str, frozenset[str]]] = []
        self.anchor: tuple[str, frozenset[str]] | None = None
        self.text: list[str] = []
        self.marked: list[str] | None = None

    def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if name == "img":
            self.page.images.append(found)
        if name in self._VOID:
            return
        classes = frozenset((found.get("class") or "").split())
        self.stack.append((name, classes))
        if name == "a" and found.get("href") is not None:
            self.anchor, self.text = (str(found["href"]), self.classes()), []
        if found.get("aria-current") is not None:
            self.marked = []

    def handle_endtag(self, name: str) -> None:
        if name in self._VOID:
            return
        if name == "a" and self.anchor is not None:
            self.page.links.append((*self.anchor, "".join(self.text).strip()))
            self.anchor = None
        if self.marked is not None and name in ("span", "li"):
            self.page.current.append("".join(self.marked).strip())
            self.marked = None
        while self.stack and self.stack.pop()[0] != name:
            pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.marked is not None:
            self.marked.append(data)

    def classes(self) -> frozenset[str]:
        return frozenset().union(*(classes for _, classes in self.stack))


def read(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.page


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two reports built with 3 units to a layer page: a conv net (first 5 units paged), a 7-unit MLP (all)."""
    root = tmp_path_factory.mktemp("paged")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mechscope.report.sections.units.UNITS_PER_PAGE", PER_PAGE)
        conv = build_report(EvilNet().eval(), root / "conv", data=evil_data(), config=_config(5), progress=False)
        mlp = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=3, hidden=7), 0).eval()
        wide = build_report(mlp, root / "mlp", data=modular_data(2, n_train=64, n_test=64), config=_config(None),
                            progress=False)
    return {"conv": conv.parent, "mlp": wide.parent}


def _config(max_units: int | None) -> ReportConfig:
    return dataclasses.replace(TINY, max_units=max_units)


SHOWN = {"conv": {EVIL_LAYER: 4, "relu2": 5}, "mlp": {"hidden.0": 7}}  # units with a page, by layer


def _layer_pages(folder: Path) -> list[Path]:
    """The layer pages in pager order: index.html, index-2.html, ..."""
    return sorted(folder.glob("index*.html"), key=lambda p: int(p.stem.partition("-")[2] or 1))


@pytest.mark.parametrize(("report", "layer"), [(r, name) for r, layers in SHOWN.items() for name in layers])
def test_units_section_lists_every_unit_on_exactly_one_layer_page(paged, report, layer):
    folder, shown = paged[report] / "layers" / slugify(layer), SHOWN[report][layer]
    pages = _layer_pages(folder)
    assert len(pages) == math.ceil(shown / PER_PAGE)
    assert sorted(p.name for p in folder.glob("unit-*.html")) == sorted(f"unit-{u}.html" for u in range(shown))
    grid, table = Counter[int](), Counter[int]()
    for part, path in enumerate(pages):
        page = read(path)
        expected = list(range(part * PER_PAGE, min((part + 1) * PER_PAGE, shown)))
        assert sorted(set(page.units("grid"))) == expected and sorted(page.units("units")) == expected
        grid.update(set(page.units("grid")))
        table.update(page.units("units"))
    assert grid == table == Counter(range(shown))


@pytest.mark.parametrize(("report", "layer"), [(r, name) for r, layers in SHOWN.items() for name in layers])
def test_units_section_links_each_unit_page_to_the_layer_page_that_lists_it(paged, report, layer):
    folder = paged[report] / "layers" / slugify(layer)
    listing = {u: path.name for path in _layer_pages(folder) for u in read(path).units("units")}
    for u in range(SHOWN[report][layer]):
        page = read(folder / f"unit-{u}.html")
        back = [href for href, _, text in page.links if text == f"all units of {layer}"]
        crumb = [href for href, classes, text in page.links if "crumbs" in classes and text == f"layer {layer}"]
        assert back == crumb == [listing[u]]


@pytest.mark.parametrize(("report", "layer"), [(r, name) for r, layers in SHOWN.items() for name in layers])
def test_units_section_pager_links_every_other_part_and_marks_the_current(paged, report, layer):
    folder, shown = paged[report] / "layers" / slugify(layer), SHOWN[report][layer]
    pages = _layer_pages(folder)
    names = [(f"{s}-{min(s + PER_PAGE, shown) - 1}" if min(s + PER_PAGE, shown) - 1 > s else str(s))
             for s in range(0, shown, PER_PAGE)]
    for part, path in enumerate(pages):
        page = read(path)
        targets = page.hrefs("parts")
        assert all((folder / href).is_file() for href in targets)
        assert len(targets) == 2 * (len(pages) - 1)  # one pager above the units, one below
        assert set(targets) == {p.name for p in pages} - {path.name}
        assert [t for _, c, t in page.links if "parts" in c] == 2 * (names[:part] + names[part + 1:])
        assert page.current.count(names[part]) == 2


def test_units_section_with_every_unit_shown_pages_them_all(paged):
    summary = json.loads((paged["mlp"] / REPORT_FILE).read_text())
    assert summary["settings"]["max_units"] is None
    assert "7 (7 with a page)" in (paged["mlp"] / "layers" / "hidden.0" / "index-3.html").read_text()


def test_units_section_pages_link_only_to_files_of_the_site(paged):
    for root in paged.values():
        pages = sorted(root.rglob("*.html"))
        linked = {root / "index.html"}
        for path in pages:
            page = read(path)
            for href, _, _ in page.links:
                assert "://" not in href and not href.startswith("/"), (path, href)
                target = (path.parent / href.partition("#")[0]).resolve()
                assert target.is_file() and target.is_relative_to(root.resolve()), (path, href)
                linked.add(target)
            for image in page.images:
                assert (path.parent / str(image["src"])).resolve().is_file(), (path, image)
        assert {p.resolve() for p in pages} <= {p.resolve() for p in linked}  # every page is reachable


def test_units_section_grid_thumbnails_load_lazily(paged):
    page = read(paged["conv"] / "layers" / "relu2" / "index.html")
    thumbs = [image for image in page.images if "fv/unit-" in str(image["src"])]
    assert len(thumbs) == PER_PAGE and all(image.get("loading") == "lazy" for image in thumbs)

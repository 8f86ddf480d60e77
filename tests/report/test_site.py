from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mechscope.errors import ConfigError, OutputError
from mechscope.report.site import SLUG_MAX, Site, is_slug, slugify

_SLUG_SHAPE = re.compile(r"[a-z0-9_](?:[a-z0-9._-]*[a-z0-9_])?")
# Names as models and datasets bring them: any text (surrogates included), look-alikes from a
# small alphabet that clean up alike, long dotted paths, and non-strings.
_NAMES = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))).map("".join),  # lone surrogates
    st.text(alphabet="aA0._-/ .\\", max_size=12),
    st.builds(lambda head, tail: head * 30 + tail, st.sampled_from(["layer.", "Block_", "x/"]), st.text(max_size=6)),
    st.integers(),
    st.floats(allow_nan=True),
)


def test_slugify_keeps_safe_names_unchanged():
    assert [slugify(n) for n in ("relu1", "hidden.0", "conv_2", "a-b")] == ["relu1", "hidden.0", "conv_2", "a-b"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "..", ".", "", "<script>alert(1)</script>", "a/b",
                                  "C:\\x", "x" * 300, "\u00e9t\u00e9", "a\x00b"])
def test_slugify_unsafe_names_become_one_safe_part(name):
    slug = slugify(name)
    assert slug and not slug.startswith(".") and "/" not in slug and "\\" not in slug and ".." not in slug
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert len(slug) <= 80


def test_slugify_distinguishes_names_that_clean_up_alike():
    assert slugify("a/b") != slugify("a-b") != slugify("a b")


@given(_NAMES)
@example("a" * 200)
@example("blocks." + "a_very_long_block_name_" * 5 + ".1")
@example("kernels-" + "x" * 300 + ".png")
def test_slugify_is_idempotent(name):
    slug = slugify(name)
    assert slugify(slug) == slug and is_slug(slug)


@given(_NAMES)
@example("..")
@example("-rf")
@example("a..b")
@example("\ud800")
def test_slugify_gives_a_short_safe_file_name(name):
    slug = slugify(name)
    assert _SLUG_SHAPE.fullmatch(slug) and ".." not in slug
    assert 0 < len(slug) <= SLUG_MAX and len(slug.encode()) == len(slug)


@given(_NAMES, _NAMES)
@example("a/b", "a-b")
@example("Relu", "relu")
@example("x" * 100 + "1", "x" * 100 + "2")
def test_slugify_gives_distinct_names_distinct_slugs(first, second):
    assume(str(first) != str(second))
    slug = slugify(first)
    # The one exception idempotence forces: a name and its own slug.
    assert slug != slugify(second) or slug in (str(first), str(second))


@given(st.text(alphabet="abc_.", min_size=1, max_size=200), st.sampled_from([".html", ".png", ".json"]))
def test_slugify_keeps_a_readable_prefix_and_the_suffix_of_long_names(stem, suffix):
    name = "Unit-" + stem + "-" * 80 + suffix
    slug = slugify(name)
    assert slug.endswith(suffix) and slug.startswith("unit-")
    assert re.search(r"-[0-9a-f]{12}\.", slug)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_NAMES)
def test_site_path_accepts_every_part_made_by_rel(tmp_path, name):
    site = Site(tmp_path, title="t")
    rel = site.rel("layers", name, "unit-1023.html")
    assert site.path(rel).is_relative_to(tmp_path.resolve()) and rel.count("/") == 2
    assert site.rel(*rel.split("/")) == rel


def test_site_rel_slugifies_every_part(tmp_path):
    site = Site(tmp_path, title="t")
    rel = site.rel("layers", "../../evil", "unit-1.html")
    assert rel.startswith("layers/") and rel.count("/") == 2 and ".." not in rel.split("/")
    assert site.path(rel).is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize("rel", ["../outside.html", "a/../../b.html", "/etc/passwd", "a//b", "./x"])
def test_site_path_refuses_paths_that_leave_the_root(tmp_path, rel):
    site = Site(tmp_path / "out", title="t")
    with pytest.raises(ConfigError, match="unsafe site path|outside the site"):
        site.path(rel)
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


def test_site_refuses_a_file_as_root(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        Site(target, title="t")


def test_site_writes_atomically_and_links_relatively(tmp_path):
    site = Site(tmp_path, title="t")
    site.write_page("a/b/page.html", "old", [], crumbs=[])
    site.write_page("a/b/page.html", "new", [], crumbs=[])
    assert "<h1>new</h1>" in (tmp_path / "a" / "b" / "page.html").read_text()
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind
    assert site.href("a/b/page.html", "fig/x.png") == "../../fig/x.png"
    assert site.href("index.html", "a/b/page.html") == "a/b/page.html"


def test_site_never_replaces_a_file_it_did_not_write(tmp_path):
    site = Site(tmp_path, title="t")
    (tmp_path / "page.html").write_text("<p>my own page</p>")
    with pytest.raises(OutputError, match="does not hold a report file"):
        site.write_page("page.html", "x", [], crumbs=[])
    assert (tmp_path / "page.html").read_text() == "<p>my own page</p>"


def test_site_usage_counts_every_file_and_its_bytes(tmp_path):
    site = Site(tmp_path, title="t")
    page = site.write_page("a/page.html", "x", [], crumbs=[])
    site.write_bytes("fig/x.png", b"12345")
    assert site.usage() == (2, page.stat().st_size + 5)
    assert site.usage(leave_out=("a/page.html",)) == (1, 5)
    assert site.page_html("a/page.html", "x", [], crumbs=[]) == page.read_text()


def test_site_files_are_readable_by_others(tmp_path):
    site = Site(tmp_path, title="t")
    path = site.write_text("page.html", "x")
    private = tmp_path / "private.png"
    private.write_bytes(b"png")
    private.chmod(0o600)
    site.share()
    assert path.stat().st_mode & 0o044 == 0o044 and private.stat().st_mode & 0o044 == 0o044

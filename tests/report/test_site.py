from __future__ import annotations

import pytest

from mechscope.errors import ConfigError, OutputError
from mechscope.report.site import Site, slugify


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


def test_site_files_are_readable_by_others(tmp_path):
    site = Site(tmp_path, title="t")
    path = site.write_text("page.html", "x")
    private = tmp_path / "private.png"
    private.write_bytes(b"png")
    private.chmod(0o600)
    site.share()
    assert path.stat().st_mode & 0o044 == 0o044 and private.stat().st_mode & 0o044 == 0o044

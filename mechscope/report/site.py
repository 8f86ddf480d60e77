"""A static site on disk: safe file names, atomic writes, relative links, one page layout.

Every path is given relative to the site root as slash-separated parts; each part goes
through `slugify`, and the resolved target must stay inside the root, so no name a model
or dataset brings (``../x``, ``<script>``, an absolute path) can write anywhere else.
Pages link to each other and to their images by relative URLs only, so the site opens
from disk (``file://``) without a server.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from mechscope.atomic import owned_png, write_file
from mechscope.errors import ConfigError
from mechscope.report.html import Html, esc, link, raw, tag

__all__ = ["Site", "Crumb", "slugify", "is_slug", "SLUG_MAX", "site_file_owned", "STYLE_FILE", "GENERATOR"]

STYLE_FILE = "style.css"

_FILE_MODE = 0o644
GENERATOR = '<meta name="generator" content="mechscope">'
"""In every page's head: marks the page as one mechscope wrote (and may replace)."""
_SIGNATURES = {  # what the first bytes of a site file mechscope wrote hold, by suffix
    ".html": GENERATOR.encode(),
    ".css": b"/* mechscope",
    ".json": b'"format": "mechscope-',
}
SLUG_MAX = 80
"""Most characters in a slug: a path part stays well under the 255 bytes file systems allow,
leaving room for the temporary names `mechscope.atomic` builds next to it."""
_SUFFIXES = (".html", ".png", ".json", ".css", ".svg", ".txt")  # kept at the end of a shortened slug
_HASH = 12  # hex digits of SHA-256 appended to a changed name: 48 bits
_SLUG = re.compile(r"[a-z0-9_](?:[a-z0-9._-]*[a-z0-9_])?", re.ASCII)
_UNSAFE = re.compile(r"[^a-z0-9._-]+|\.{2,}", re.ASCII)

Crumb = tuple[str, str | None]
"""One breadcrumb: (text, site-relative page path or None for the current page)."""


def slugify(name: Any) -> str:
    """Turn any name into a safe file-name part: lower-case letters, digits, '.', '_' and '-'.

    A slug is a name that is already safe: at most `SLUG_MAX` characters, none outside
    that set, starting and ending with a letter, digit or '_' (so never '.', '..', a hidden
    file or an option-like '-x'), with no '..' inside. A slug is returned unchanged, so
    `slugify(slugify(x)) == slugify(x)` for every `x`. Any other name becomes its cleaned,
    lower-cased prefix ("x" when nothing is left), a '-', 12 hex digits of the SHA-256 of
    the full original name, and its final ".html", ".png", ".json", ".css", ".svg" or
    ".txt" if it had one; the prefix is cut so that the whole fits in `SLUG_MAX`. Callers
    pass whole parts ("unit-3.html") rather than appending to a slug. Hence two different names
    share a slug only when one of them is the other's slug (or SHA-256 collides in 48
    bits), and since slugs have no capitals, they stay distinct on case-insensitive file
    systems too ("Relu" and "relu" differ).

    Example:
        >>> slugify("relu1"), slugify("hidden.0")
        ('relu1', 'hidden.0')
        >>> slugify("../etc/passwd")
        'etc-passwd-7fef78f53440'
        >>> slugify("kernels-" + "b" * 100 + ".png")[-20:]
        'bbbbbbbb-94a38a2b8995.png'
    """
    text = str(name)
    if is_slug(text):
        return text
    suffix = next((s for s in _SUFFIXES if len(text) > len(s) and text[-len(s):].lower() == s), "")
    stem = text[: len(text) - len(suffix)]
    clean = _UNSAFE.sub("-", stem.lower()).strip("-.")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH]
    prefix = clean[: SLUG_MAX - len(suffix) - _HASH - 1].rstrip("-.") or "x"
    return f"{prefix}-{digest}{suffix}"


def is_slug(text: str) -> bool:
    """True when `text` is its own slug: safe as one file-name part on any common file system."""
    return len(text) <= SLUG_MAX and _SLUG.fullmatch(text) is not None and ".." not in text


class Site:
    """Write pages and files under one root folder.

    Args:
        root: Folder of the site (created if missing).
        title: Site name shown in every page's title.
        home: Optional (text, path) of an index page outside the site that the
            breadcrumb starts from (the tour index); linked relatively, never written.

    Example:
        >>> site = Site("out", title="DigitCNN")
        >>> site.write_page("index.html", "Overview", body, crumbs=[("DigitCNN", None)])
    """

    def __init__(self, root: str | os.PathLike[str], *, title: str, home: tuple[str, Path] | None = None) -> None:
        self.root = Path(root).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {str(self.root)!r} exists and is not a folder; choose a folder path.")
        self.root.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.home = None if home is None else (home[0], Path(home[1]).resolve())
        self.pages: list[str] = []  # site-relative paths of the pages written

    def rel(self, *parts: Any) -> str:
        """A site-relative path made of slugified parts, e.g. rel("layers", "relu1", "unit-3.html")."""
        if not parts:
            raise ConfigError("a site path needs at least one part.")
        return "/".join(slugify(p) for p in parts)

    def path(self, rel: str) -> Path:
        """The file a site-relative path names; raises ConfigError if it would leave the root."""
        pieces = rel.split("/")
        if any(not is_slug(p) for p in pieces):
            raise ConfigError(f"unsafe site path {rel!r}: build paths with Site.rel(...).")
        target = (self.root / Path(*pieces)).resolve()
        if target != self.root and self.root not in target.parents:
            raise ConfigError(f"refusing to write {str(target)!r}: it lies outside the site folder {str(self.root)!r}.")
        return target

    def href(self, from_rel: str, to_rel: str) -> str:
        """Relative URL from the page `from_rel` to the site file `to_rel`."""
        return posixpath.relpath(to_rel, posixpath.dirname(from_rel) or ".")

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write a file atomically (temporary sibling, then rename); never over a file mechscope did not write."""
        return write_file(self.path(rel), lambda tmp: tmp.write_bytes(data), owned=site_file_owned,
                          what="a report file", mode=_FILE_MODE, tidy=False)

    def share(self) -> None:
        """Make every private file under the root readable (pictures written by other modules use mkstemp)."""
        for path in self.root.rglob("*"):
            if path.is_file() and not path.is_symlink() and not path.stat().st_mode & 0o044:
                os.chmod(path, _FILE_MODE)

    def write_text(self, rel: str, text: str) -> Path:
        """Write UTF-8 text atomically."""
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_style(self) -> Path:
        """Copy the stylesheet into the site root."""
        css = resources.files("mechscope.report").joinpath("templates").joinpath(STYLE_FILE).read_text(encoding="utf-8")
        return self.write_text(STYLE_FILE, css)

    def write_page(
        self,
        rel: str,
        heading: Any,
        body: Html | Sequence[Html],
        *,
        crumbs: Sequence[Crumb],
        subtitle: Any = None,
    ) -> Path:
        """Write one HTML page with the site layout: breadcrumb, heading, body.

        Args:
            rel: Site-relative page path ending in ".html".
            heading: Page heading (escaped).
            body: Markup built with `mechscope.report.html` (already safe).
            crumbs: Breadcrumb from the model overview down to this page.
            subtitle: Optional line under the heading (escaped).
        """
        page = self.page_html(rel, heading, body, crumbs=crumbs, subtitle=subtitle)
        self.pages.append(rel)
        return self.write_text(rel, page)

    def page_html(
        self,
        rel: str,
        heading: Any,
        body: Html | Sequence[Html],
        *,
        crumbs: Sequence[Crumb],
        subtitle: Any = None,
    ) -> Html:
        """The markup `write_page` writes at `rel`, without writing it (arguments as there)."""
        parts = [body] if isinstance(body, Html) else list(body)
        trail = self._breadcrumb(rel, crumbs)
        head = raw(
            '<meta charset="utf-8">' + GENERATOR + '<meta name="viewport" content="width=device-width, initial-scale=1">'
        ) + tag("title", f"{heading} - {self.title}") + raw(
            f'<link rel="stylesheet" href="{esc(self.href(rel, STYLE_FILE))}">'
        )
        header = tag("header", trail, tag("h1", heading), tag("p", subtitle, class_="subtitle") if subtitle else "")
        return (
            raw("<!DOCTYPE html>\n<html lang=\"en\">")
            + tag("head", head)
            + tag("body", header, tag("main", *parts), tag("footer", "mechscope report - ", self.title))
            + raw("</html>\n")
        )

    def usage(self, *, leave_out: Sequence[str] = ()) -> tuple[int, int]:
        """(files, bytes) the site holds on disk now, leaving out the site-relative paths `leave_out`."""
        skipped = {self.path(rel) for rel in leave_out}
        files = size = 0
        for path in self.root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path not in skipped:
                files += 1
                size += path.stat().st_size
        return files, size

    def _breadcrumb(self, rel: str, crumbs: Sequence[Crumb]) -> Html:
        items: list[Html] = []
        if self.home is not None:
            page_dir = self.path(rel).parent
            items.append(tag("li", link(Path(os.path.relpath(self.home[1], page_dir)).as_posix(), self.home[0])))
        for text, target in crumbs:
            if target is None:
                items.append(tag("li", text, aria_current="page"))
            else:
                items.append(tag("li", link(self.href(rel, target), text)))
        return tag("nav", tag("ol", *items), class_="crumbs", aria_label="breadcrumb")


def site_file_owned(path: Path) -> bool:
    """True for a page, stylesheet, JSON or PNG file that mechscope wrote (by its first bytes)."""
    if path.suffix == ".png":
        return owned_png(path)
    signature = _SIGNATURES.get(path.suffix)
    if signature is None:
        return False
    try:
        with open(path, "rb") as handle:
            return signature in handle.read(4096)
    except OSError:
        return False

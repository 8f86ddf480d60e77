"""Open the built site in headless Chromium: every page renders, every link and image resolves,
no console error, no dialog (the hostile names stay text)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlparse

import pytest

CHROMIUM = os.environ.get("MECHSCOPE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    path = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if path is None:
        pytest.skip(f"no Chromium at {CHROMIUM} or on PATH; install it with `apt-get install chromium` "
                    "(.ci/run does this in CI)")
    return path


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing; pip install -e '.[test]'")
    with sync_api.sync_playwright() as pw:
        handle = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield handle
        finally:
            handle.close()


def _local(url: str) -> Path | None:
    """The file a file:// URL names, or None for any other scheme."""
    parsed = urlparse(urldefrag(url)[0])
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def test_every_page_renders_with_resolving_links_and_images(site, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: errors.append(f"failed request: {req.url}"))
    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    root = site.resolve()
    queue, seen = [root / "index.html"], set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        page.goto(path.as_uri(), wait_until="load")
        assert page.title(), f"{path} has no title"
        assert page.locator("h1").count() == 1, f"{path} has no single heading"
        assert page.locator("nav.crumbs li").count() >= 1, f"{path} has no breadcrumb"
        # Thumbnails load lazily (near the viewport only): ask for every one, then wait for all to settle.
        page.eval_on_selector_all("img[loading=lazy]", "imgs => imgs.forEach(i => { i.loading = 'eager'; })")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=10_000)
        broken = page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))")
        assert not broken, f"{path}: images that do not load: {broken}"
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            target = _local(href)
            assert target is not None, f"{path}: link leaves the site: {href}"
            assert target.is_file(), f"{path}: broken link {href}"
            if target.suffix == ".html":
                assert target.is_relative_to(root), f"{path}: link outside the site: {href}"
                queue.append(target)
    html_files = set(root.rglob("*.html"))
    assert seen == html_files, f"pages never linked: {sorted(html_files - seen)[:5]}"
    assert not errors, errors[:5]
    assert not dialogs, f"a script ran: {dialogs}"
    page.close()


def test_pages_are_screenshot_ready(site, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for rel in ("index.html", "evil/report/index.html", "evil/report/layers/relu2/unit-0.html"):
        page.goto((site / rel).resolve().as_uri(), wait_until="load")
        shot = tmp_path / (rel.replace("/", "_") + ".png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"{rel} scrolls sideways ({width}px)"
    page.close()

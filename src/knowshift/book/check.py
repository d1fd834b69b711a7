"""Check a built book in a real headless Chromium: every page reachable from the start page
loads and has a title, every image has loaded (``naturalWidth > 0``), every formula has been
typeset by MathJax (served from the book itself, so this holds offline), and every internal link
points at a page that exists and, if it has one, at an anchor on that page. Optionally saves a
full-page screenshot of one chapter.

Uses the system's Chromium and chromedriver (Debian packages ``chromium`` and
``chromium-driver``; ``$KNOWSHIFT_CHROMIUM`` and ``$KNOWSHIFT_CHROMEDRIVER`` override) through
selenium, never a browser download."""

from __future__ import annotations

import os
import re
import shutil
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

from ..core.errors import BookCheckError

IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = [...document.images];
imgs.forEach(i => { i.loading = 'eager'; });
Promise.all(imgs.map(i => i.decode().catch(() => null))).then(() => done(
  imgs.map(i => [i.currentSrc || i.src, i.naturalWidth])));
"""
# Formulas are typeset by MathJax after load; a formula without an mjx-container never rendered
# (for instance because MathJax was to come from a CDN and the reader is offline).
MATH_JS = """
const done = arguments[arguments.length - 1];
const report = () => {
  const math = [...document.querySelectorAll('.math')];
  done([math.length, math.filter(e => !e.querySelector('mjx-container'))
                         .map(e => e.textContent.trim().slice(0, 40))]);
};
const ready = window.MathJax && MathJax.startup && MathJax.startup.promise;
(ready ? ready : Promise.resolve()).then(report, report);
"""
PAGE_JS = """
return {title: document.title,
        heading: (document.querySelector('main h1, article h1, h1') || {}).textContent || '',
        ids: [...document.querySelectorAll('[id]')].map(e => e.id),
        links: [...document.querySelectorAll('a[href]')].map(a => a.href)};
"""

# <meta http-equiv="Refresh" content="0; url=intro.html">, attributes in either order
REFRESH = re.compile(
    r"<meta\b(?=[^>]*http-equiv=[\"']?refresh)[^>]*content=[\"']?\s*\d+\s*;\s*url=([^\"'>\s]+)",
    re.IGNORECASE)


def _binary(env: str, names: tuple[str, ...]) -> str:
    found = os.environ.get(env) or next(filter(None, map(shutil.which, names)), None)
    if not found:
        raise BookCheckError(f"no {names[0]} found (install the Debian packages chromium and "
                             f"chromium-driver, or set ${env})")
    return found


def open_browser(width: int = 1280, height: int = 900):
    """A headless Chromium driven by selenium, with no network access of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("KNOWSHIFT_CHROMIUM", ("chromium", "chromium-browser"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions",
                "--no-first-run", f"--window-size={width},{height}"):
        options.add_argument(arg)
    service = Service(_binary("KNOWSHIFT_CHROMEDRIVER", ("chromedriver",)))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def _local(url: str, root: Path) -> Path | None:
    """The file inside ``root`` that a ``file://`` URL points at, else None."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    return path if path.is_relative_to(root) else None


LAUNCH_HOSTS = ("mybinder.org", "colab.research.google.com")


def check(index_html: str | Path, screenshot: str | Path | None = None,
          screenshot_page: str = "results.html",
          screenshots: dict[str, str | Path] | None = None) -> dict:
    """Crawl the book from ``index_html``; returns a report with ``pages`` (relative path ->
    title), ``figures`` (images seen), ``formulas``, ``external_links``, ``launch_links`` (page
    -> its Binder / Colab / JupyterHub links) and ``problems`` (empty when the book is sound)."""
    index_html = Path(index_html).resolve()
    root = index_html.parent
    if not index_html.is_file():
        raise BookCheckError(f"{index_html} does not exist: build the book first")
    driver = open_browser()
    pages: dict[str, str] = {}
    ids: dict[Path, set[str]] = {}
    links: list[tuple[str, str, Path, str]] = []  # (page, href, target file, anchor)
    problems: list[str] = []
    figures = formulas = external = 0
    launch: dict[str, list[str]] = {}             # page -> its launch links (Binder, Colab, ...)
    queue, seen = deque([index_html]), {index_html}

    def follow(rel: str, href: str) -> None:
        """Record an internal link from page ``rel`` and queue its page; count external ones
        and note launch links."""
        nonlocal external
        url, anchor = urldefrag(href)
        target = _local(url, root)
        if target is None:
            external += urlparse(href).scheme in ("http", "https")
            if urlparse(href).hostname in LAUNCH_HOSTS or "/hub/user-redirect/" in href:
                launch.setdefault(rel, []).append(href)
            return
        links.append((rel, href, target, anchor))
        if target.is_file() and target.suffix == ".html" and target not in seen \
                and not target.relative_to(root).as_posix().startswith("_"):
            seen.add(target)
            queue.append(target)

    try:
        while queue:
            page = queue.popleft()
            rel = page.relative_to(root).as_posix()
            redirect = _redirect(page)
            if redirect is not None:  # a redirect page (Jupyter Book's index.html) has no body
                pages[rel] = "(redirect)"
                follow(rel, redirect)
                continue
            driver.get(page.as_uri())  # returns once the page has loaded
            info = driver.execute_script(PAGE_JS)
            pages[rel] = info["title"]
            if not info["heading"].strip():
                problems.append(f"{rel}: page has no heading (did it load?)")
            ids[page] = set(info["ids"])
            for src, width in driver.execute_async_script(IMAGES_JS):
                figures += 1
                if not width:
                    problems.append(f"{rel}: image {src} did not load")
            count, unrendered = driver.execute_async_script(MATH_JS)
            formulas += count
            if unrendered:
                problems.append(f"{rel}: {len(unrendered)} formula(s) not typeset by MathJax, "
                                f"first {unrendered[0]!r} (is MathJax in the book?)")
            for href in info["links"]:
                follow(rel, href)
        for rel, href, target, anchor in links:
            if not target.exists():
                problems.append(f"{rel}: broken link {href}")
            elif anchor and target in ids and unquote(anchor) not in ids[target]:
                problems.append(f"{rel}: link {href} points at a missing anchor")
        shots = dict(screenshots or {})
        if screenshot:
            shots[screenshot_page] = screenshot
        for page_name, out in shots.items():
            _screenshot(driver, root / page_name, Path(out))
    finally:
        driver.quit()
    return {"pages": pages, "figures": figures, "formulas": formulas,
            "external_links": external, "internal_links": len(links), "launch_links": launch,
            "problems": problems}


def _redirect(page: Path) -> str | None:
    """The URL a meta-refresh page sends the reader to, read from its source: letting the
    browser follow it races the checks against the navigation."""
    found = REFRESH.search(page.read_text(errors="replace")[:4096])
    return urljoin(page.as_uri(), found.group(1)) if found else None


def _screenshot(driver, page: Path, out: Path) -> None:
    if not page.is_file():
        raise BookCheckError(f"cannot screenshot {page}: no such page")
    driver.get(page.as_uri())
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 900), 8000))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    driver.save_screenshot(str(tmp))
    os.replace(tmp, out)

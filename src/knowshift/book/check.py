"""Check a built book in a real headless Chromium: every page reachable from the start page
loads and has a title, every image has loaded (``naturalWidth > 0``), every formula has been
typeset by MathJax (served from the book itself, so this holds offline), and every internal link
points at a page that exists and, if it has one, at an anchor on that page. Optionally saves a
full-page screenshot of one chapter. :func:`layout` (and :func:`layouts`, at 1280 px and 390 px)
checks what a reader sees: tables and figures within the text column, no sideways scroll, no
visible NaN, figures' text large enough as displayed, code inputs hidden behind a working toggle.

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


# --- Layout: what a reader sees at a desktop width (1280 px) and a phone width (390 px) ---------

LAYOUT_WIDTHS = (1280, 390)       # CSS px: a laptop, a phone held upright
WINDOW_HEIGHTS = {390: 844}       # else 900
CONTENT_WIDTH = 1000              # from this width on, layout() also reads the pages' content
MIN_FIGURE_TEXT_PX = 9.0          # smallest text in a figure, in CSS px as displayed
TOLERANCE_PX = 1.0
# The text column, first match that is displayed: sphinx-book-theme's article, then fallbacks.
COLUMN = ("main#main-content article.bd-article", ".bd-article-container", "article",
          "main", "[role=main]", "body")
CHAPTERS = "notebooks"     # the book's folder of notebook chapters (a book path, not a run's)
RASTER_PAGES = (f"{CHAPTERS}/*.html", "results.html")   # their figures must be SVG
CODE_PAGES = (f"{CHAPTERS}/0*.html",)                   # stage chapters: code hidden, toggleable
RASTER = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
# "NaN" or "nan" as a word; not np.nan, 'nan' in code, nanoGPT or finance
NAN = re.compile(r"(?<![\w.'\"])nan(?![\w'\"])", re.IGNORECASE)

# Resolves once images have decoded, web fonts have loaded and MathJax has typeset: all change
# widths.
SETTLE_JS = """
const done = arguments[arguments.length - 1];
const imgs = [...document.images];
imgs.forEach(i => { i.loading = 'eager'; });
const math = window.MathJax && MathJax.startup && MathJax.startup.promise;
Promise.all([...imgs.map(i => i.decode().catch(() => null)),
             document.fonts ? document.fonts.ready : null, math ? math.catch(() => null) : null])
  .then(() => requestAnimationFrame(() => done(true)));
"""
# Measures the text column, every table and figure in it, the page's sideways scroll and the
# code inputs of notebook cells. Coordinates are CSS px relative to the window.
LAYOUT_JS = """
const [columnSelectors, tolerance, tableScroll] = arguments;
const shown = e => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && (!e.checkVisibility || e.checkVisibility())
         && !e.closest('details:not([open]) > :not(summary)');
};
// cut by code points, not UTF-16 units: half an emoji cannot be sent back to Python
const text = (e, n) => [...(e.innerText || e.textContent || '').replace(/\\s+/g, ' ').trim()]
                       .slice(0, n).join('').trim();
const name = e => {
  let s = e.tagName.toLowerCase();
  if (e.id) s += '#' + e.id;
  const cls = [...e.classList].filter(c => !['docutils', 'container'].includes(c)).slice(0, 2);
  return cls.length ? s + '.' + cls.join('.') : s;
};
const under = e => {
  const section = e.closest('section');
  const h = section && section.querySelector('h1, h2, h3, h4, h5, h6');
  return h ? text(h, 60).replace(/#$/, '').trim() : '';
};
const column = columnSelectors.map(s => document.querySelector(s)).find(e => e && shown(e))
               || document.body;
const cr = column.getBoundingClientRect(), cs = getComputedStyle(column);
const left = cr.left + parseFloat(cs.paddingLeft) + parseFloat(cs.borderLeftWidth);
const right = cr.right - parseFloat(cs.paddingRight) - parseFloat(cs.borderRightWidth);
const sticksOut = r => r.right > right + tolerance || r.left < left - tolerance;
const round = x => Math.round(x * 10) / 10;

const tables = [...column.querySelectorAll('table')]
  .filter(t => !t.parentElement.closest('table') && shown(t))
  .map((t, i) => {
    // Its scrolling box: the table itself (pydata-sphinx-theme makes tables display: block;
    // overflow: auto; on a display: table, overflow does nothing) or the nearest ancestor in
    // the column that scrolls sideways.
    let box = null;
    for (let e = t; e && e !== column && column.contains(e); e = e.parentElement) {
      const s = getComputedStyle(e);
      if (['auto', 'scroll'].includes(s.overflowX) && !(e === t && /table/.test(s.display))) {
        box = e;
        break;
      }
    }
    const r = t.getBoundingClientRect(), b = (box || t).getBoundingClientRect();
    const boxFits = !sticksOut(b) && (!box || box.clientWidth <= right - left + tolerance);
    const scrolls = !!box && box.scrollWidth > box.clientWidth + tolerance;
    return {index: i + 1, name: name(t), text: text(t.querySelector('caption') || t, 40),
            under: under(t), width: round(box === t ? t.scrollWidth : r.width),
            box: box === t ? 'itself' : box && name(box),
            box_width: box && round(box.clientWidth), box_right: round(b.right),
            box_fits: boxFits, scrolls, fits: boxFits && (tableScroll || !scrolls)};
  });

const figures = [...column.querySelectorAll('img, svg')]
  .filter(e => shown(e) && !(e.tagName.toLowerCase() === 'svg' && e.parentElement.closest('svg'))
          && !e.closest('mjx-container, .MathJax, summary, button, .headerlink'))
  .map((e, i) => {
    const r = e.getBoundingClientRect();
    const f = {index: i + 1, kind: e.tagName.toLowerCase(), name: name(e), under: under(e),
               src: e.currentSrc || e.src || '', width: round(r.width), height: round(r.height),
               left: round(r.left), right: round(r.right), fits: !sticksOut(r)};
    if (f.kind === 'svg') {           // inline: the browser knows each text's size on screen
      let smallest = null;
      for (const t of e.querySelectorAll('text, tspan, textPath')) {
        const own = [...t.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        const m = t.getScreenCTM && t.getScreenCTM();
        if (!own || !m) continue;
        const px = parseFloat(getComputedStyle(t).fontSize)
                   * Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
        if (smallest === null || px < smallest.px) smallest = {px: round(px), text: text(t, 30)};
      }
      f.smallest_text = smallest;
      f.texts = e.querySelectorAll('text').length;
    }
    return f;
  });

const doc = document.documentElement;
// clientWidth is the window less a vertical scrollbar: what the reader sees without scrolling
const page = {inner_width: window.innerWidth, client_width: doc.clientWidth,
              scroll_width: doc.scrollWidth, sticking_out: []};
if (doc.scrollWidth > doc.clientWidth) {   // which elements reach past the window's right edge
  const edge = doc.clientWidth + tolerance;
  const over = e => e.getBoundingClientRect().right > edge;
  const clipped = e => {          // inside a box that hides or scrolls its overflow, or fixed
    for (let a = e; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.position === 'fixed') return true;
      if (a !== e && s.overflowX !== 'visible' && !over(a)) return true;
    }
    return false;
  };
  page.sticking_out = [...document.body.querySelectorAll('*')]
    .filter(e => over(e) && !over(e.parentElement) && shown(e) && !clipped(e))
    .sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right)
    .slice(0, 3).map(e => name(e) + (e.tagName === 'TABLE' ? ' "' + text(e, 30) + '"' : '')
                          + ' (' + Math.round(e.getBoundingClientRect().right) + ' px)');
}

const inputs = [...document.querySelectorAll('div.cell_input, .cell .cell_input')]
  .map(e => ({shown: shown(e), in_details: !!e.closest('details'), text: text(e, 50)}));

return {column: {name: name(column), left: round(left), right: round(right),
                 width: round(right - left)},
        tables, figures, page, inputs, text: document.body.innerText};
"""
# Clicks the first closed code toggle (myst-nb's hide-input: <details class="hide above-input">
# around the cell's input) and says whether the input then shows.
TOGGLE_JS = """
return [...document.querySelectorAll('details')]
  .find(d => !d.open && d.querySelector('.cell_input') && d.querySelector(':scope > summary'))
  || null;
"""
TOGGLED_JS = """
const d = arguments[0], input = d.querySelector('.cell_input');
const r = input.getBoundingClientRect();
return {open: d.open, shown: r.width > 0 && r.height > 0
                              && (!input.checkVisibility || input.checkVisibility()),
        summary: ((d.querySelector(':scope > summary .collapsed')
                   || d.querySelector(':scope > summary')).textContent || '')
                 .replace(/\\s+/g, ' ').trim()};
"""


def layouts(index_html: str | Path, widths: tuple[int, ...] = LAYOUT_WIDTHS, *,
            desktop_table_scroll: bool = False) -> dict:
    """:func:`layout` at each width (by default 1280 px, which also reads the content, and
    390 px); returns ``widths`` (width -> its report) and all their ``problems``. From
    ``CONTENT_WIDTH`` on (a desktop) every table must fit the text column as it is; below it
    (a phone) a table may scroll sideways in its own box (everywhere with
    ``desktop_table_scroll``)."""
    reports = {w: layout(index_html, w,
                         table_scroll=desktop_table_scroll or w < CONTENT_WIDTH)
               for w in widths}
    return {"widths": reports, "problems": [p for r in reports.values() for p in r["problems"]]}


def layout(index_html: str | Path, width: int = 1280, height: int | None = None, *,
           content: bool | None = None, table_scroll: bool = True,
           raster_pages: tuple[str, ...] = RASTER_PAGES,
           code_pages: tuple[str, ...] = CODE_PAGES) -> dict:
    """Check how every page reachable from ``index_html`` lays out in a ``width`` px window.

    At every width: no table or figure (``img``, top-level ``svg``) reaches past the text
    column (a table inside a horizontally scrolling box, or one that is its own, is measured by
    that box, which must fit the column; with ``table_scroll=False`` a table that has to scroll
    sideways is reported too), and the page does not scroll sideways. With ``content`` (by
    default at widths from ``CONTENT_WIDTH`` on, so once per pair of widths): no "NaN" as a
    word in the visible text; every SVG figure's smallest text is at least
    ``MIN_FIGURE_TEXT_PX`` CSS px as displayed (read from the SVG file); a raster figure on
    ``raster_pages`` is reported, its text cannot be measured; on ``code_pages`` every code
    cell's input is hidden and one toggle, clicked, shows its code.

    Returns ``width``, ``pages`` (relative path -> what was measured there: ``column``,
    ``tables``, ``figures``, ``page``; with content also ``nan``, ``code``), the counts
    ``tables`` and ``figures``, and ``problems``: one line each, naming the page (and width) and
    the element, empty when the layout is sound."""
    index_html = Path(index_html).resolve()
    root = index_html.parent
    if not index_html.is_file():
        raise BookCheckError(f"{index_html} does not exist: build the book first")
    content = width >= CONTENT_WIDTH if content is None else content
    height = height or WINDOW_HEIGHTS.get(width, 900)
    pages: dict[str, dict] = {}
    problems: list[str] = []
    queue, seen = deque([index_html]), {index_html}
    driver = open_browser(max(width, 500), height)
    try:
        # A window cannot be narrower than 500 px: a phone's width is emulated instead.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        while queue:
            page = queue.popleft()
            rel = page.relative_to(root).as_posix()
            redirect = _redirect(page)
            hrefs = [redirect] if redirect else []
            if redirect is None:
                driver.get(page.as_uri())
                try:
                    driver.execute_async_script(SETTLE_JS)
                except Exception:  # noqa: BLE001 - a page that never settles is measured as is
                    pass
                seen_here = driver.execute_script(LAYOUT_JS, list(COLUMN), TOLERANCE_PX,
                                                  table_scroll)
                pages[rel] = _measured(rel, width, seen_here, problems)
                if content:
                    _read_content(driver, root, rel, seen_here, pages[rel], problems,
                                  raster=_matches(rel, raster_pages),
                                  code=_matches(rel, code_pages))
                hrefs = driver.execute_script(
                    "return [...document.querySelectorAll('a[href]')].map(a => a.href)")
            for href in hrefs:
                target = _local(urldefrag(href)[0], root)
                if target is not None and target.is_file() and target.suffix == ".html" \
                        and target not in seen \
                        and not target.relative_to(root).as_posix().startswith("_"):
                    seen.add(target)
                    queue.append(target)
    finally:
        driver.quit()
    return {"width": width, "pages": pages,
            "tables": sum(len(p["tables"]) for p in pages.values()),
            "figures": sum(len(p["figures"]) for p in pages.values()), "problems": problems}


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch
    return any(fnmatch(rel, p) for p in patterns)


def _table(t: dict) -> str:
    where = f' under "{t["under"]}"' if t["under"] else ""
    return f'table {t["index"]} "{t["text"]}"{where}'


def _figure(f: dict) -> str:
    if f["kind"] == "img":
        what = "img " + (Path(urlparse(f["src"]).path).name if not f["src"].startswith("data:")
                         else f["src"][:30])
    else:
        what = f"inline {f['name']} {f['index']}"
    where = f' under "{f["under"]}"' if f["under"] else ""
    return what + where


def _measured(rel: str, width: int, seen: dict, problems: list[str]) -> dict:
    """The width-dependent problems of one page, from what LAYOUT_JS measured."""
    at = f"{rel} at {width} px"
    col = seen["column"]
    for t in seen["tables"]:
        if t["fits"]:
            continue
        if t["box"] is None:
            problems.append(f"{at}: {_table(t)} is {t['width']:.0f} px wide, past the "
                            f"{col['width']:.0f} px text column, and has no scrolling box "
                            f"of its own")
        elif not t["box_fits"]:
            problems.append(f"{at}: the scrolling box {t['box']} of {_table(t)} reaches "
                            f"{t['box_right'] - col['right']:.0f} px past the "
                            f"{col['width']:.0f} px text column")
        else:
            problems.append(f"{at}: {_table(t)} is {t['width']:.0f} px wide and scrolls "
                            f"sideways in the {col['width']:.0f} px text column")
    for f in seen["figures"]:
        if not f["fits"]:
            problems.append(f"{at}: figure {_figure(f)} is {f['width']:.0f} px wide, past the "
                            f"{col['width']:.0f} px text column")
    pg = seen["page"]
    if pg["scroll_width"] > pg["client_width"]:
        out = f"; sticking out: {', '.join(pg['sticking_out'])}" if pg["sticking_out"] else ""
        problems.append(f"{at}: the page scrolls sideways ({pg['scroll_width']} px of content "
                        f"in a {pg['client_width']} px wide view){out}")
    return {"column": col, "tables": seen["tables"], "figures": seen["figures"], "page": pg}


def _read_content(driver, root: Path, rel: str, seen: dict, measured: dict,
                  problems: list[str], raster: bool, code: bool) -> None:
    """The width-independent problems of one page: NaN in its text, figures' text size,
    raster figures, code inputs and their toggle."""
    text = seen["text"]
    hits = [" ".join(text[max(m.start() - 30, 0):m.end() + 30].split())
            for m in NAN.finditer(text)]
    measured["nan"] = hits
    if hits:
        problems.append(f"{rel}: {len(hits)} visible \"NaN\" in the text, first "
                        + "; ".join(f"\"…{h}…\"" for h in hits[:3]))
    for f in seen["figures"]:
        src = urlparse(f["src"])
        suffix = Path(src.path).suffix.lower()
        if f["kind"] == "svg":
            small = f.get("smallest_text")
            if small is not None:
                f["text_px"] = small["px"]
                if small["px"] < MIN_FIGURE_TEXT_PX - 0.05:
                    problems.append(f"{rel}: figure {_figure(f)}: its smallest text "
                                    f"\"{small['text']}\" is {small['px']:.1f} px as shown, "
                                    f"under {MIN_FIGURE_TEXT_PX:g} px")
        elif suffix == ".svg" or f["src"].startswith("data:image/svg"):
            _svg_figure(root, rel, f, problems)
        elif (suffix in RASTER or re.match(r"data:image/(?!svg)", f["src"])) and raster \
                and f["width"] >= 48:
            f["raster"] = True
            problems.append(f"{rel}: raster figure {_figure(f)}: text size cannot be checked; "
                            f"save it as SVG")
    if code:
        measured["code"] = _code(driver, rel, seen["inputs"], problems)


def _svg_figure(root: Path, rel: str, f: dict, problems: list[str]) -> None:
    """The smallest text of an SVG shown by an ``<img>``, read from its file, at the size
    shown."""
    try:
        if f["src"].startswith("data:"):
            from urllib.request import urlopen
            with urlopen(f["src"]) as data:   # a data: URL, decoded locally
                svg = data.read().decode("utf-8", "replace")
        else:
            path = _local(f["src"], root)
            if path is None or not path.is_file():
                problems.append(f"{rel}: figure {_figure(f)}: its SVG file is not in the book")
                return
            svg = path.read_text(encoding="utf-8", errors="replace")
        sizes = svg_text_sizes(svg)
    except Exception as err:     # noqa: BLE001 - an unreadable figure is a finding, not a crash
        problems.append(f"{rel}: figure {_figure(f)}: cannot read its SVG ({err})")
        return
    f.update(svg=sizes)
    if sizes["smallest"] is None:
        problems.append(f"{rel}: figure {_figure(f)}: its SVG has no <text> (text drawn as "
                        f"paths?): text size cannot be checked; save it with "
                        f"svg.fonttype 'none'")
        return
    w, h = sizes["width"], sizes["height"]
    scale = min(f["width"] / w, f["height"] / h) if w and h else None
    if scale is None:
        return
    px = sizes["smallest"] * scale
    f["text_px"] = round(px, 2)
    if px < MIN_FIGURE_TEXT_PX - 0.05:
        problems.append(f"{rel}: figure {_figure(f)}: its smallest text \"{sizes['text']}\" is "
                        f"{px:.1f} px as shown ({sizes['smallest']:g} in the file, shown at "
                        f"{scale:.2f}×), under {MIN_FIGURE_TEXT_PX:g} px")


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_LENGTH = re.compile(rf"^\s*({_NUMBER})\s*(px|pt|pc|in|cm|mm|em|rem|%)?\s*$")
_PX = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54,
       "mm": 96 / 25.4}


def _length(value: str | None, inherited: float = 16.0) -> float | None:
    """A CSS length in user units (px), ``em`` and ``%`` against ``inherited``."""
    found = _LENGTH.match(value or "")
    if not found:
        return None
    number, unit = float(found.group(1)), found.group(2)
    if unit in ("em", "rem"):
        return number * (inherited if unit == "em" else 16.0)
    if unit == "%":
        return number / 100 * inherited
    return number * _PX[unit]


def _font_size(el, inherited: float) -> float:
    """An SVG element's font size: its ``font-size`` attribute, or ``font-size`` / ``font`` in
    its style, else the inherited one."""
    size = inherited
    if el.get("font-size"):
        size = _length(el.get("font-size"), inherited) or size
    for prop in (el.get("style") or "").split(";"):
        key, _, value = prop.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "font-size":
            size = _length(value, inherited) or size
        elif key == "font":    # shorthand: [style variant weight] size[/line-height] family
            for token in value.split():
                found = _length(token.split("/")[0], inherited)
                if found is not None and re.search(r"[a-z%]", token.split("/")[0]):
                    size = found
                    break
    return size


def _scale(transform: str | None) -> float:
    """The uniform scale of an SVG ``transform`` (rotations and translations: 1)."""
    scale = 1.0
    for fn, args in re.findall(r"(\w+)\s*\(([^)]*)\)", transform or ""):
        nums = [float(n) for n in re.findall(_NUMBER, args)]
        if fn == "scale" and nums:
            scale *= abs(nums[0] * (nums[1] if len(nums) > 1 else nums[0])) ** 0.5
        elif fn == "matrix" and len(nums) >= 4:
            scale *= abs(nums[0] * nums[3] - nums[1] * nums[2]) ** 0.5
    return scale


def svg_text_sizes(svg: str) -> dict:
    """The text of an SVG (such as matplotlib writes with ``svg.fonttype: 'none'``): its
    ``width`` and ``height`` in user units (the viewBox's, else the size in px), the number of
    ``texts``, and the ``smallest`` font size in user units (with simple ``transform`` scales)
    and its ``text``; ``smallest`` is None when the SVG has no text elements."""
    import xml.etree.ElementTree as ET

    tree = ET.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    local = lambda tag: tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""  # noqa: E731
    box = [float(v) for v in re.split(r"[\s,]+", (tree.get("viewBox") or "").strip()) if v]
    if len(box) == 4:
        width, height = box[2], box[3]
    else:
        width, height = _length(tree.get("width")), _length(tree.get("height"))
    found = {"width": width, "height": height, "texts": 0, "smallest": None, "text": ""}

    def walk(el, size: float, scale: float) -> None:
        size, scale = _font_size(el, size), scale * _scale(el.get("transform"))
        if local(el.tag) in ("text", "tspan", "textPath"):
            found["texts"] += local(el.tag) == "text"
            own = (el.text or "").strip()
            if own and (found["smallest"] is None or size * scale < found["smallest"]):
                found["smallest"], found["text"] = round(size * scale, 3), own[:30]
        for child in el:
            if local(child.tag) not in ("defs", "metadata", "style", "title", "desc"):
                walk(child, size, scale)

    walk(tree, 16.0, 1.0)
    return found


def _code(driver, rel: str, inputs: list[dict], problems: list[str]) -> dict:
    """Code inputs must be hidden; one toggle, clicked, must show its code."""
    shown = [i for i in inputs if i["shown"]]
    code = {"inputs": len(inputs), "shown": len(shown), "toggle": None}
    details = driver.execute_script(TOGGLE_JS)
    if shown:
        none = "; the page has no code toggle" if details is None else ""
        problems.append(f"{rel}: {len(shown)} of {len(inputs)} code inputs are shown, not "
                        f"behind a toggle (first: \"{shown[0]['text']}\"){none}")
    if details is None:
        if inputs and not shown:
            problems.append(f"{rel}: {len(inputs)} code input(s) hidden with no toggle to "
                            f"show them")
        return code
    summary = details.find_element("css selector", ":scope > summary")
    try:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
        summary.click()
    except Exception as err:     # noqa: BLE001 - reported, the check goes on
        problems.append(f"{rel}: the code toggle cannot be clicked ({type(err).__name__})")
        code["toggle"] = "cannot be clicked"
        return code
    after = driver.execute_script(TOGGLED_JS, details)
    code["toggle"] = "shows the code" if after["shown"] else "does not show the code"
    if not after["shown"]:
        problems.append(f"{rel}: clicking the code toggle \"{after['summary']}\" does not show "
                        f"the code")
    return code

"""The book's layout as a reader sees it at 1280 px and 390 px (``check.layout``): hand-made
pages, each defect once in a broken book and mended in a fixed one. The browser tests drive
Chromium (Debian's chromium + chromium-driver) and need no model."""

import struct
import zlib

import pytest

from knowshift.book import check

# The sphinx-book-theme skeleton the check looks for: a text column of 700 px (and padding)
# beside a 200 px sidebar, which goes at phone widths.
STYLE = """<style>
body { margin: 0; font: 16px sans-serif; }
main#main-content { display: flex; }
nav { flex: none; width: 200px; }
article.bd-article { flex: 0 1 700px; min-width: 0; padding: 0 20px; }
@media (max-width: 600px) { nav { display: none; } }
</style>"""


def page(title: str, body: str, extra: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"{STYLE}{extra}</head><body><main id='main-content'><nav>Contents</nav>"
            f"<article class='bd-article'><section><h1>{title}</h1>{body}</section>"
            f"</article></main></body></html>")


def wide_table(text: str, style: str = "") -> str:
    """About 2,400 px wide."""
    cells = "".join(f"<td>column {i} {text}</td>" for i in range(30))
    return f"<table style='white-space: nowrap; {style}'><tr>{cells}</tr></table>"


def svg(font: str, width: float = 400, height: float = 200) -> str:
    """A figure as matplotlib writes it with svg.fonttype 'none': user units are points."""
    return (f'<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}pt" height="{height}pt" '
            f'viewBox="0 0 {width} {height}" version="1.1"><g id="figure_1">'
            f'<rect width="{width}" height="{height}" fill="#eef"/>'
            f'<text style="font: 20px \'DejaVu Sans\'" x="10" y="40">Title</text>'
            f'<text style="font: {font} \'DejaVu Sans\'; text-anchor: middle" x="200" y="150" '
            f'transform="rotate(-0 200 150)">0.25</text></g></svg>')


def png(width: int = 8, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def code_cell(source: str, hidden: bool) -> str:
    """A code cell as myst-nb renders it, its input behind hide-input's toggle or not."""
    cell_input = (f"<div class='cell_input docutils container'><div class='highlight'>"
                  f"<pre>{source}</pre></div></div>")
    if hidden:
        cell_input = ("<details class='admonition hide above-input'>"
                      "<summary aria-label='Toggle hidden content'>"
                      "<p class='collapsed admonition-title'>Show code cell source</p>"
                      "<p class='expanded admonition-title'>Hide code cell source</p></summary>"
                      f"{cell_input}</details>")
    return (f"<div class='cell tag_hide-input docutils container'>{cell_input}"
            f"<div class='cell_output docutils container'><pre>done</pre></div></div>")


def make_book(root, fixed: bool):
    """index.html (a redirect) -> start.html -> results.html, notebooks/01_a.html (figures,
    code), notebooks/02_b.html and 03_c.html (toggles); broken, or with every defect mended."""
    (root / "notebooks").mkdir()
    (root / "_images").mkdir()
    (root / "_images" / "logo.png").write_bytes(png())
    (root / "_images" / "findings.png").write_bytes(png())
    (root / "_images" / "findings.svg").write_text(svg("14px"))
    (root / "_images" / "small.svg").write_text(svg("14px" if fixed else "6px"))
    (root / "_images" / "wide.svg").write_text(svg("16px"))
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=start.html" />')
    (root / "start.html").write_text(page("Start", (
        "<img src='_images/logo.png' style='width: 200px'>"    # raster, but not a figure page
        "<p>We compare with nanoGPT; finance questions; the code says np.nan.</p>"
        "<a href='results.html'>results</a> <a href='notebooks/01_a.html'>one</a> "
        "<a href='notebooks/02_b.html'>two</a> <a href='notebooks/03_c.html'>three</a>")))
    # overflow does nothing on a display: table; pydata-sphinx-theme's tables are blocks
    table_a = wide_table("a", "overflow-x: auto")
    (root / "results.html").write_text(page("Results", (
        (f"<div style='overflow-x: auto'>{table_a}</div>" if fixed else table_a)
        + (wide_table("b", "display: block; overflow-x: auto") if fixed
           else f"<div style='overflow-x: auto; width: 900px'>{wide_table('b')}</div>")
        # a caption cut at 40 characters, in the middle of an emoji's two UTF-16 units
        + f"<table><caption>{'c' * 39}📈 chart</caption>"
        + f"<tr><td>effect</td><td>{'–' if fixed else 'NaN'}</td></tr></table>"
        + (f"<img src='_images/findings.{'svg' if fixed else 'png'}' style='width: 300px'>"))))
    figure_style = "max-width: 100%" if fixed else "width: 900px"
    inline_text = 10 if fixed else 5
    (root / "notebooks" / "01_a.html").write_text(page("Stage one", (
        code_cell("from knowshift import study", hidden=True)
        + code_cell("table = study.run()", hidden=fixed)
        + code_cell("y = NaN  # hidden, so not on the page", hidden=True)
        # 400 pt wide (533 px), shown at half that: 6 -> 4 px, or 14 -> 9.3 px
        + "<img src='../_images/small.svg' style='width: 266.67px'>"
        + f"<img src='../_images/wide.svg' style='{figure_style}'>"
        + "<svg width='200' height='100' viewBox='0 0 200 100'><text x='10' y='50' "
          f"font-size='{inline_text}'>inline label</text></svg>")))
    broken_toggle = "" if fixed else "<style>details .cell_input { display: none; }</style>"
    (root / "notebooks" / "02_b.html").write_text(page("Stage two", (
        code_cell("study.more()", hidden=True) + code_cell("study.plot()", hidden=True)),
        extra=broken_toggle))
    hidden_for_good = "" if fixed else "<style>.cell_input { display: none; }</style>"
    (root / "notebooks" / "03_c.html").write_text(page("Stage three", (
        code_cell("study.last()", hidden=fixed)), extra=hidden_for_good))
    return root / "index.html"


@pytest.mark.slow
def test_layout_finds_each_defect_and_passes_the_mended_book(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "fixed").mkdir()
    report = check.layouts(make_book(tmp_path / "broken", fixed=False))
    problems = report["problems"]
    text = "\n".join(problems)

    def found(*parts: str) -> list[str]:
        return [p for p in problems if all(part in p for part in parts)]

    wide, phone = report["widths"][1280], report["widths"][390]
    assert set(wide["pages"]) == set(phone["pages"]) == {
        "start.html", "results.html", "notebooks/01_a.html", "notebooks/02_b.html",
        "notebooks/03_c.html"}
    assert phone["pages"]["results.html"]["page"]["inner_width"] == 390
    # 1. + 2.: a wide table with no scrolling box, a scrolling box wider than the column, a
    # figure wider than the column, the page scrolling sideways: at both widths
    for width in (1280, 390):
        at = f"results.html at {width} px"
        assert len(found(at, 'table 1 "column 0 a', "has no scrolling box")) == 1, text
        assert len(found(at, "the scrolling box div", 'table 2 "column 0 b')) == 1, text
        assert len(found(at, "the page scrolls sideways", "table")) == 1, text
        assert len(found(f"notebooks/01_a.html at {width} px", "figure img wide.svg",
                         "past the")) == 1, text
    assert len(found("notebooks/01_a.html at 390 px", "the page scrolls sideways")) == 1
    assert not found("notebooks/01_a.html at 1280 px", "scrolls sideways"), text
    assert not found("start.html"), text          # nanoGPT, finance, np.nan, a raster logo
    # 3. a visible NaN, with its surroundings
    assert found("results.html: 1 visible \"NaN\"", "effect NaN"), text
    # 4. figure text as shown: 6 px in the file at 0.67x; inline, 5 px; a raster figure
    small = found("notebooks/01_a.html: figure img small.svg", '"0.25" is 4.0 px as shown')
    assert len(small) == 1 and "(6 in the file, shown at 0.67×)" in small[0], text
    inline = found("notebooks/01_a.html: figure inline svg 3", '"inline label" is 5.0 px')
    assert len(inline) == 1, text
    assert found("results.html: raster figure img findings.png",
                 "text size cannot be checked; save it as SVG"), text
    figures = wide["pages"]["notebooks/01_a.html"]["figures"]
    assert [f.get("text_px") for f in figures] == [pytest.approx(4.0, abs=0.05),
                                                   pytest.approx(36.0, abs=0.1), 5.0]
    # 5. a code input shown; a toggle that does not show its code
    assert found("notebooks/01_a.html: 1 of 3 code inputs are shown", "table = study.run()")
    assert wide["pages"]["notebooks/01_a.html"]["code"] == {
        "inputs": 3, "shown": 1, "toggle": "shows the code"}
    assert found("notebooks/02_b.html: clicking the code toggle \"Show code cell source\" does "
                 "not show the code"), text
    assert found("notebooks/03_c.html: 1 code input(s) hidden with no toggle"), text
    assert "code" not in phone["pages"]["notebooks/01_a.html"]   # read once, at 1280 px
    assert len(problems) == 4 * 2 + 1 + 1 + 3 + 1 + 1 + 1, text

    # its two wide tables scroll in their own boxes, which a desktop reading refuses
    fixed = make_book(tmp_path / "fixed", fixed=True)
    desk = check.layouts(fixed)
    assert [p.split(" is ")[0] for p in desk["problems"]] == [
        'results.html at 1280 px: table 1 "column 0 a column 1 a column 2 a column" under '
        '"Results"', 'results.html at 1280 px: table 2 "column 0 b column 1 b column 2 b'
        ' column" under "Results"']
    mended = check.layouts(fixed, desktop_table_scroll=True)
    assert mended["problems"] == []
    pages = mended["widths"][1280]["pages"]
    assert pages["notebooks/02_b.html"]["code"]["toggle"] == "shows the code"
    assert pages["notebooks/01_a.html"]["figures"][0]["text_px"] == pytest.approx(9.33, abs=0.01)
    tables = mended["widths"][390]["pages"]["results.html"]["tables"]
    assert [(t["box"], t["scrolls"]) for t in tables] == [("div", True), ("itself", True),
                                                          (None, False)]
    assert tables[1]["width"] > 2000
    # tables that must scroll sideways, when they may not
    strict = check.layout(tmp_path / "fixed" / "index.html", 1280, content=False,
                          table_scroll=False)
    assert [p.split(" is ")[0] for p in strict["problems"]] == [
        'results.html at 1280 px: table 1 "column 0 a column 1 a column 2 a column" under '
        '"Results"', 'results.html at 1280 px: table 2 "column 0 b column 1 b column 2 b'
        ' column" under "Results"']
    assert all("px wide and scrolls sideways in the 700 px text column" in p
               for p in strict["problems"])


def test_svg_text_sizes_reads_matplotlib_and_hand_written_svg():
    sizes = check.svg_text_sizes(svg("6px"))
    assert sizes == {"width": 400.0, "height": 200.0, "texts": 2, "smallest": 6.0,
                     "text": "0.25"}
    hand = ('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="150">'
            '<g font-size="12" transform="translate(5 5) scale(0.5)">'
            '<text x="0" y="10">half of 12<tspan style="font-size: 75%">sub</tspan></text></g>'
            '<text style="font-size: 9pt" y="40">nine points</text>'
            '<text font-size="2" transform="matrix(4 0 0 4 0 0)" y="60">eight</text></svg>')
    sizes = check.svg_text_sizes(hand)
    assert (sizes["width"], sizes["height"], sizes["texts"]) == (300.0, 150.0, 3)
    assert (sizes["smallest"], sizes["text"]) == (4.5, "sub")     # 12 x 0.75 x 0.5
    assert check.svg_text_sizes('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 5">'
                                '<path d="M 0 0 L 1 1"/></svg>')["smallest"] is None


def test_svg_text_sizes_of_a_real_matplotlib_figure(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with plt.rc_context():
        plt.rcdefaults()            # whatever style an earlier test left in this process
        plt.rcParams.update({"svg.fonttype": "none", "font.size": 7, "axes.titlesize": 11})
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.plot([0, 1], [0, 1])
        ax.set_title("title")
        fig.savefig(tmp_path / "f.svg")
        plt.close(fig)
    sizes = check.svg_text_sizes((tmp_path / "f.svg").read_text())
    assert (sizes["width"], sizes["height"]) == (288.0, 144.0)     # 4 x 2 in, in points
    assert sizes["smallest"] == 7.0 and sizes["texts"] > 5


def test_nan_is_found_as_a_word_only():
    text = "nanoGPT, finance, np.nan, float('nan') and nan_policy; but NaN | nan% (-nan) NAN"
    assert [m.group() for m in check.NAN.finditer(text)] == ["NaN", "nan", "nan", "NAN"]

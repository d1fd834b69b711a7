"""The book: built offline from the smoke run's executed notebooks with warnings as errors, then
opened in a real headless Chromium (Debian's chromium + chromium-driver)."""

import json
import re
import shutil

import pytest

from knowshift.book import build as book
from knowshift.book import check
from knowshift.core import stats
from knowshift.book import findings as pages
from knowshift.study import findings

pytestmark = pytest.mark.slow     # every test here loads the model, runs a profile or drives Chromium

CHAPTERS = ["intro.html", "method.html", "results.html", "workshop.html", "rerun.html",
            "attribution.html", "execution.html"]


def test_book_builds_from_the_run_without_warnings(smoke_run):
    run_dir, _ = smoke_run
    html = run_dir / "book" / "html"
    notebooks = book.toc_notebooks(book.sources_dir())
    assert len(notebooks) >= 7
    for page in CHAPTERS + [f"{nb}.html" for nb in notebooks]:
        assert (html / page).is_file(), page
    log = (run_dir / "book" / "build.log").read_text()
    assert "build succeeded" in log and "WARNING" not in log
    results = (html / "results.html").read_text()
    assert "{{" not in results and "β_unk = −8.3" in results
    assert f"<td><p>{len(findings.FINDINGS)}</p></td>" in results  # the last numbered row
    for f in findings.FINDINGS:             # each finding's section, under its stable label
        assert f'id="finding-{f.id}"' in results, f.id
    assert "results.html#finding-beta-unk" in (html / "related.html").read_text()
    assert "{{" not in (html / "workshop.html").read_text()
    # the stage chapters show the notebooks' stored outputs (figures), not re-executed ones
    assert (html / "_images").is_dir() and any((html / "_images").glob("*.svg"))


def test_book_pages_show_no_machine_paths_or_tool_noise(smoke_run):
    """Papermill's injected cell (the run's absolute path) is not on the page, and saving a
    figure prints nothing."""
    run_dir, _ = smoke_run
    html = run_dir / "book" / "html"
    for nb in book.toc_notebooks(book.sources_dir()):
        page = (html / f"{nb}.html").read_text()
        assert str(run_dir.resolve()) not in page, nb
        assert "PosixPath(" not in page and "Injected parameters" not in page, nb


def test_book_in_headless_chromium(smoke_run):
    run_dir, _ = smoke_run
    shot = run_dir / "book" / "screenshots" / "results.png"
    teach = run_dir / "book" / "screenshots" / "workshop.png"
    shot.unlink(missing_ok=True)
    teach.unlink(missing_ok=True)
    report = check.check(run_dir / "book" / "html" / "index.html",
                             screenshots={"results.html": shot, "workshop.html": teach})
    assert teach.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["problems"] == []
    expected = CHAPTERS + [f"{nb}.html" for nb in book.toc_notebooks(book.sources_dir())]
    assert set(expected) <= set(report["pages"])
    figures_in_notebooks = sum(
        bool({"image/png", "image/svg+xml"} & set(out.get("data", {})))
        for nb in (run_dir / "notebooks").glob("0*.ipynb")
        for cell in json.loads(nb.read_text())["cells"] for out in cell.get("outputs", []))
    assert report["figures"] >= figures_in_notebooks >= 7
    assert report["internal_links"] > 50
    assert report["formulas"] > 10  # the method chapter's, typeset by the book's own MathJax
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert report["launch_links"] == {}            # no repository URL set: no launch buttons
    workshop = (run_dir / "book" / "html" / "workshop.html").read_text()
    assert "{{" not in workshop and "Lesson plan" in workshop


def test_launch_buttons_follow_the_repository_url_setting(smoke_run, tmp_path, monkeypatch):
    """With the one repository setting, every notebook page offers Binder and Colab for the
    repository's own notebook, and its download; the rest of the book is unchanged."""
    run_dir, _ = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("book"))
    monkeypatch.setenv("KNOWSHIFT_REPOSITORY_URL", "https://github.com/knowshift/knowshift")
    index = book.build_html(copy)
    report = check.check(index)
    assert report["problems"] == []
    notebooks = book.toc_notebooks(book.sources_dir())
    assert set(report["launch_links"]) == {f"{nb}.html" for nb in notebooks}
    links = report["launch_links"]["notebooks/03_finetune.html"]
    assert ("https://mybinder.org/v2/gh/knowshift/knowshift/main?urlpath=tree/"
            "notebooks/03_finetune.ipynb") in links
    assert ("https://colab.research.google.com/github/knowshift/knowshift/blob/main/"
            "notebooks/03_finetune.ipynb") in links
    page = (copy / "book" / "html" / "notebooks" / "03_finetune.html").read_text()
    assert "_sources/notebooks/03_finetune.ipynb" in page          # the download button
    assert (copy / "book" / "html" / "_sources" / "notebooks" / "03_finetune.ipynb").is_file()


def test_browser_check_reports_broken_images_links_and_anchors(tmp_path):
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=start.html" />')
    (tmp_path / "start.html").write_text(
        '<html><head><title>t</title></head><body><h1>Start</h1>'
        '<img src="missing.png"><a href="other.html#there">ok</a>'
        '<a href="gone.html">gone</a><a href="other.html#nowhere">bad anchor</a></body></html>')
    (tmp_path / "other.html").write_text(
        '<html><head><title>o</title></head><body><h1 id="there">Other</h1>'
        '<p>A formula no MathJax typesets: <span class="math">\\(x^2\\)</span></p></body></html>')
    report = check.check(tmp_path / "index.html")
    assert report["pages"] == {"index.html": "(redirect)", "start.html": "t", "other.html": "o"}
    problems = "\n".join(report["problems"])
    assert "image" in problems and "missing.png" in problems
    assert "broken link" in problems and "gone.html" in problems
    assert "missing anchor" in problems and "nowhere" in problems
    assert "other.html: 1 formula(s) not typeset by MathJax" in problems and "x^2" in problems
    assert len(report["problems"]) == 4


def test_a_broken_page_fails_the_build_and_keeps_the_last_good_book(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    sources = tmp_path / "book"
    shutil.copytree(book.sources_dir(), sources)
    with open(sources / "method.md", "a") as f:
        f.write("\n![a figure that is not there](figures/nothing.png)\n\nSee {ref}`no-such-label`.\n")
    index = run_dir / "book" / "html" / "index.html"
    before = index.stat().st_mtime_ns
    with pytest.raises(book.BookBuildError) as err:
        book.build_html(run_dir, sources=sources)
    message = str(err.value)
    assert "nothing.png" in message and "no-such-label" in message
    assert index.stat().st_mtime_ns == before


def test_a_notebook_with_an_error_is_refused(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    shutil.copytree(run_dir / "notebooks", tmp_path / "notebooks")
    nb_path = tmp_path / "notebooks" / "04_dynamics.ipynb"
    nb = json.loads(nb_path.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"].append({"output_type": "error", "ename": "ValueError", "evalue": "boom",
                            "traceback": []})
    nb_path.write_text(json.dumps(nb))
    with pytest.raises(book.BookBuildError, match="04_dynamics.*ValueError: boom"):
        book.build_html(tmp_path)
    (tmp_path / "notebooks" / "05_regression.ipynb").unlink()
    with pytest.raises(book.BookBuildError, match=r"lacks the executed notebooks.*05_regression"):
        book.build_html(tmp_path)


def test_comparison_rows_follow_the_run(smoke_run):
    """The smoke run has two seeds: every finding it runs gets an interval across them and a
    verdict from the interval."""
    run_dir, _ = smoke_run
    table = findings.compare(run_dir)
    assert len(table) == len(findings.FINDINGS)
    assert set(table["verdict"]) <= {*stats.VERDICTS, "-"}
    measured = table[table["verdict"] != "-"]
    assert len(measured) >= 6
    assert measured["interval"].str.contains("t across 2 seeds|clustered by").all()
    assert (measured["low"] <= measured["effect"]).all()
    assert (measured["effect"] <= measured["high"]).all()
    t = findings.RunTables(run_dir)
    mixes = findings._mix_variants(t)
    hi = t.answers(mixes.iloc[-1], "CONVERGENCE").groupby("seed")["correct"].mean()
    lo = t.answers(mixes.iloc[0], "CONVERGENCE").groupby("seed")["correct"].mean()
    drop = table.loc[table["finding"].str.startswith("A higher Unknown share")].iloc[0]
    assert drop["effect"] == pytest.approx((hi - lo).mean())
    assert (run_dir / "book" / "html" / "_images").is_dir()
    assert "findings.svg" in (run_dir / "book" / "html" / "results.html").read_text()


def test_both_verdicts_the_build_and_the_deviations_are_on_the_pages(smoke_run):
    """The results page gives each finding's verdict on direction and on size, with what the
    run could detect; it and the front page say what built the numbers; the method chapter
    declares each finding's scaling rule and what this run could see."""
    run_dir, _ = smoke_run
    table = findings.compare(run_dir)
    assert set(table["size_verdict"]) <= {*stats.SIZE_VERDICTS, "-"}
    judged = table[table["verdict"] != "-"]
    assert (judged["scale_rule"] != "-").all()
    assert judged["detectable"].notna().any()
    html = run_dir / "book" / "html"
    results = (html / "results.html").read_text()
    for text in ("Built with", "commit", "Where this run departs from the paper",
                 "detectable (80 % power)", "In short", "no confirmatory replication"):
        assert text in results, text
    assert "Built with" in (html / "intro.html").read_text()
    method = (html / "method.html").read_text()
    assert "times our in-distribution β0 over the paper" in method
    assert "needed to detect it" in method


def test_a_replication_is_read_beside_the_reading_it_confirms(smoke_run):
    """Finding by finding, whether the verdict on direction held in the confirmatory run."""
    run_dir, _ = smoke_run
    table = findings.compare(run_dir)
    same = pages.side_by_side(table, table)
    judged = int((table["verdict"] != "-").sum())
    assert same.count("| held |") == judged
    moved = table.copy()
    first = moved.index[moved["verdict"] != "-"][0]
    moved.loc[first, "verdict"] = (stats.DISAGREES if moved.loc[first, "verdict"] != stats.DISAGREES
                                   else stats.AGREES)
    assert pages.side_by_side(table, moved).count("did not hold") == 1


def test_the_book_reads_as_a_book_at_1280_and_390_px(smoke_run):
    """What a reader sees (book.check.layouts): no table or figure past the text column and no
    sideways scroll at 1280 or 390 px, no visible NaN, SVG figures whose smallest text is at
    least 9 CSS px as shown, and the stage chapters' code behind a toggle that works. Each
    check fails on the book of 470fce4 (docs/book.md)."""
    run_dir, _ = smoke_run
    report = check.layouts(run_dir / "book" / "html" / "index.html")
    assert report["problems"] == []
    wide = report["widths"][1280]
    assert wide["figures"] >= 8 and wide["tables"] >= 15


def test_chapters_show_the_parameters_the_run_used_and_their_prose_numbers(smoke_run):
    """The code a chapter shows is the code that ran: the notebook's default parameters cell
    is gone and the injected one shows this run's values; every glued number is filled."""
    run_dir, _ = smoke_run
    html = run_dir / "book" / "html"
    for nb in book.toc_notebooks(book.sources_dir()):
        page = (html / f"{nb}.html").read_text()
        assert "../runs/workshop" not in page, nb
        assert f"runs/{run_dir.name}" in page, nb
        prose = re.sub(r'<div class="highlight.*?</pre>', "", page, flags=re.S)  # not code
        assert "{glue" not in prose and "{ref}" not in prose, nb
    facts = (html / "notebooks" / "01_facts.html").read_text()
    assert "questions</strong> over" in facts and "profile" in facts and "smoke" in facts

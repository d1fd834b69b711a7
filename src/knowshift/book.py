"""Assemble a run's executed notebooks and the prose in ``book/`` into a Jupyter Book (1.x,
Sphinx) and build it to HTML, offline.

The book shows the notebooks' stored outputs; nothing is executed here. The builder copies the
book sources and ``run_dir/notebooks/*.ipynb`` into ``run_dir/book/source``, writes the results
chapter from the run's tables (:mod:`knowshift.comparison`), and builds with warnings as errors,
so a missing figure, a broken cross-reference or a notebook the build cannot read fails the
build with the warnings listed. The HTML replaces ``run_dir/book/html`` only once the build has
succeeded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import comparison
from .errors import BookBuildError
from .layout import RunFolder

PACKAGE_DIR = Path(__file__).parent

def sources_dir() -> Path:
    """The repository's ``book/`` (``$KNOWSHIFT_BOOK`` overrides)."""
    env = os.environ.get("KNOWSHIFT_BOOK")
    return Path(env) if env else PACKAGE_DIR.parent.parent / "book"


def toc_notebooks(sources: Path) -> list[str]:
    """Notebook chapters the table of contents asks for (``notebooks/<name>``, no suffix)."""
    return re.findall(r"file:\s*(notebooks/[\w.-]+)", (sources / "_toc.yml").read_text())


def stage_sources(run_dir: str | Path, sources: str | Path | None = None) -> Path:
    """Write the book's source folder for ``run_dir``; returns it."""
    run, sources = RunFolder(run_dir), Path(sources or sources_dir())
    if not (sources / "_toc.yml").is_file():
        raise BookBuildError(f"{sources} is not a book source folder (no _toc.yml)")
    executed = {nb: run.notebooks() / f"{Path(nb).name}.ipynb" for nb in toc_notebooks(sources)}
    missing = [nb for nb, path in executed.items() if not path.is_file()]
    if missing:
        raise BookBuildError(f"{run.root} lacks the executed notebooks {missing}: run the study "
                             "stages first (knowshift run)")
    source = run.book_source()
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(sources, source, ignore=shutil.ignore_patterns("_build", ".*"))
    (source / "notebooks").mkdir(exist_ok=True)
    for nb, path in executed.items():
        failed = _error_outputs(path)
        if failed:
            raise BookBuildError(f"{path} holds error output ({failed}): rerun its stage "
                                 "(knowshift run --force)")
        shutil.copy2(path, source / f"{nb}.ipynb")
    results = source / "results.md"
    if results.is_file():
        text = results.read_text()
        text = text.replace("{{ run_summary }}", comparison.run_summary(run_dir))
        table = comparison.compare(run_dir)
        text = text.replace("{{ comparison_table }}", comparison.markdown(table))
        if "{{ findings_figure }}" in text:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig = comparison.figure(table)
            fig.savefig(source / "findings.png", dpi=130, bbox_inches="tight")
            plt.close(fig)
            text = text.replace("{{ findings_figure }}", "![Each finding's effect with its 95 % "
                                "interval, beside the paper's value](findings.png)")
        results.write_text(text)
    return source


def _error_outputs(path: Path) -> str:
    """The first error a notebook's stored outputs hold ('' if none)."""
    for cell in json.loads(path.read_text()).get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue')}"
    return ""


def build(run_dir: str | Path, sources: str | Path | None = None) -> Path:
    """Build the book of ``run_dir``; returns its ``index.html``."""
    run = RunFolder(Path(run_dir).resolve())
    source = stage_sources(run.root, sources)
    scratch = run.book_scratch()
    if scratch.exists():
        shutil.rmtree(scratch)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(source), "--path-output", str(scratch), "--all", "-W", "--keep-going"]
    env = os.environ | {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    run.book_log().write_text(log)
    problems = [line for line in log.splitlines()
                if re.search(r"\b(WARNING|ERROR)\b", line) or "Traceback" in line]
    html = scratch / "_build" / "html"
    if proc.returncode != 0 or problems or not (html / "index.html").is_file():
        shown = "\n  ".join(problems[:20]) or log.strip()[-2000:]
        raise BookBuildError(f"the book did not build (see {run.book_log()}):"
                             f"\n  {shown}")
    final = run.book_html()
    old = final.with_name(".html-old")
    if final.exists():
        os.replace(final, old)
    os.replace(html, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return final / "index.html"

"""Assemble a run's executed notebooks and the prose in ``book/`` into a Jupyter Book (1.x,
Sphinx) and build it to HTML, offline.

The book shows the notebooks' stored outputs; nothing is executed here. The builder copies the
book sources and ``run_dir/notebooks/*.ipynb`` into ``run_dir/book/source``, writes the results
chapter from the run's tables (:mod:`knowshift.study.findings`, worded by
:mod:`knowshift.book.findings`), and builds with warnings as errors,
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

import yaml

from ..core.errors import BookBuildError, KnowshiftError
from ..core.files import write_folder
from ..core.layout import REPOSITORY, RunFolder
from ..core.params import shown_value
from ..study import findings
from . import execution
from . import findings as pages
from .findings import unknown_findings


def sources_dir() -> Path:
    """The repository's ``book/`` (``$KNOWSHIFT_BOOK`` overrides)."""
    env = os.environ.get("KNOWSHIFT_BOOK")
    return Path(env) if env else REPOSITORY / "book"


def toc_notebooks(sources: Path) -> list[str]:
    """Notebook chapters the table of contents asks for (``notebooks/<name>``, no suffix)."""
    return re.findall(r"file:\s*(notebooks/[\w.-]+)", (sources / "_toc.yml").read_text())


# The profile whose run confirms another's, read with rules fixed before it ran: its findings
# are shown beside the confirmed run's on the results page.
CONFIRMED_BY = {"reference": "replication"}


def confirmation(run_dir: str | Path) -> Path | None:
    """The run folder that confirms ``run_dir`` (by :data:`CONFIRMED_BY`, beside it), when it
    holds every product the comparison reads; else None."""
    run = Path(run_dir).resolve()
    other = CONFIRMED_BY.get(run.name)
    if other is None:
        return None
    try:
        findings.RunTables(run.parent / other)
    except KnowshiftError:
        return None
    return run.parent / other


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
    check_citations(sources, executed)
    source = run.book_source()
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(sources, source, ignore=shutil.ignore_patterns("_build", ".*"))
    _configure_repository(source / "_config.yml")
    (source / "notebooks").mkdir(exist_ok=True)
    for nb, path in executed.items():
        failed = _error_outputs(path)
        if failed:
            raise BookBuildError(f"{path} holds error output ({failed}): rerun its stage "
                                 "(knowshift run --force)")
        _copy_for_reading(path, source / f"{nb}.ipynb", run.root)
    table = findings.compare(run_dir)
    workshop = source / "workshop.md"
    if workshop.is_file():
        text = _fill_findings(workshop.read_text(), table, run.root.name)
        workshop.write_text(text.replace("{{ repository }}", repository_url(
            source / "_config.yml") or "<repository-url>"))
    method = source / "method.md"
    if method.is_file():
        method.write_text(method.read_text().replace(
            "{{ scaling_rules }}", pages.rules_markdown()).replace(
            "{{ power_table }}", pages.power_markdown(table, run_dir)))
    archive = f"results-{run.root.name}.zip"
    execution.archive(run_dir, source / archive, {"findings": table})
    shared = {
        "{{ run_summary }}": lambda: pages.run_summary(run_dir),
        "{{ build_summary }}": lambda: pages.build_summary(run_dir),
        "{{ answer }}": lambda: pages.answer(table),
        "{{ findings_figure }}": lambda: _findings_figure(table, source),
        "{{ downloads }}": lambda: (f"{{download}}`The run's result tables <{archive}>` (every "
                                    "stage's tables and the findings, CSV in one zip)"),
        "{{ execution_statistics }}": lambda: execution.statistics_markdown(run_dir),
    }
    for page in ("intro.md", "results.md", "execution.md"):
        path = source / page
        if not path.is_file():
            continue
        text = path.read_text()
        for placeholder, make in shared.items():
            if placeholder in text:
                text = text.replace(placeholder, make())
        if page == "results.md":
            text = text.replace("{{ report }}", pages.report(table))
            text = text.replace("{{ deviations }}", pages.deviations(run_dir))
            text = text.replace("{{ comparison_table }}", pages.markdown(table))
            text = text.replace("{{ replication }}", _replication(run_dir, table))
        path.write_text(text)
    return source


def _findings_figure(table, source: Path) -> str:
    """The findings figure as SVG in the book's source folder; its markdown."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not (source / "findings.svg").is_file():
        fig = pages.figure(table)
        with plt.rc_context({"svg.fonttype": "none"}):      # text kept as text
            fig.savefig(source / "findings.svg", format="svg", bbox_inches="tight")
        plt.close(fig)
    return ("![Each judged finding: our effect with its 95 % interval, coloured by the verdict "
            "on direction, the paper's effect on our scale (x), and the verdict on size at the "
            "right](findings.svg)")


BINDER_URL, COLAB_URL = "https://mybinder.org", "https://colab.research.google.com"


def repository_url(config: Path | None = None) -> str:
    """The one setting the book's repository links hang on: ``$KNOWSHIFT_REPOSITORY_URL``,
    else ``repository.url`` in the book's ``_config.yml`` ('' when unset)."""
    env = os.environ.get("KNOWSHIFT_REPOSITORY_URL", "").strip()
    if env:
        return env
    data = yaml.safe_load((config or sources_dir() / "_config.yml").read_text()) or {}
    return str((data.get("repository") or {}).get("url") or "").strip()


def _configure_repository(config: Path) -> None:
    """Launch buttons (Binder, Colab, and JupyterHub when its URL is configured) and the
    repository button from :func:`repository_url`; all off when it is unset. Notebook pages
    sit at ``notebooks/<name>.ipynb`` in the book as in the repository, so the book's root
    stands for the repository's."""
    data = yaml.safe_load(config.read_text()) or {}
    url = repository_url(config)
    launch = data.setdefault("launch_buttons", {})
    html = data.setdefault("html", {})
    html["use_repository_button"] = bool(url)
    if url:
        repo = data.setdefault("repository", {})
        repo.update({"url": url, "path_to_book": "",
                     "branch": os.environ.get("KNOWSHIFT_REPOSITORY_BRANCH",
                                              repo.get("branch") or "main")})
        launch.update({"binderhub_url": BINDER_URL, "colab_url": COLAB_URL})
    else:
        data.pop("repository", None)
        launch.update({"binderhub_url": "", "colab_url": "", "jupyterhub_url": ""})
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _replication(run_dir, table) -> str:
    """The results page's section on the confirmatory replication."""
    other = confirmation(run_dir)
    if other is None:
        name = CONFIRMED_BY.get(Path(run_dir).resolve().name)
        if name is None:
            return ("This run has no confirmatory replication of its own: the book of the "
                    + " and ".join(f"`{k}`" for k in CONFIRMED_BY) + " profile shows one "
                    "beside its reading, with fresh fine-tuning seeds.")
        return (f"The confirmatory replication (`{name}` profile) has not been run for this "
                f"build: `make run PROFILE={name}`, then rebuild this book.")
    return ("This run's verdicts were read before the rules of the method chapter were fixed, "
            "so they are **exploratory**. The replication repeats the study with other "
            "fine-tuning seeds (the same study set and SliCK labels), read with those rules: "
            "it is the **confirmatory** reading.\n\n"
            + pages.run_summary(other) + "\n\n"
            + pages.side_by_side(table, findings.compare(other)))


def _fill_findings(text: str, table, run_name: str) -> str:
    """``{{ finding <id> }}``: our number for that finding of the comparison, with its
    verdict; ``{{ run_name }}``: the run folder's name."""
    return pages.fill(text.replace("{{ run_name }}", f"`{run_name}`"), table)


def check_citations(sources: str | Path, notebooks: dict[str, Path] | None = None) -> None:
    """Every finding a page cites (``{{ finding <id> }}``, ``{ref}`finding-<id>```) exists, in
    the pages ``sources/*.md`` and in the markdown cells of ``notebooks`` (the executed
    notebooks to stage, by their name in the book); else :class:`BookBuildError` with one line
    per unknown id and its page. Reads no run."""
    texts = {p.name: p.read_text() for p in sorted(Path(sources).glob("*.md"))}
    texts |= {f"{nb}.ipynb": pages.notebook_markdown(json.loads(Path(path).read_text())
                                                     .get("cells", []))
              for nb, path in (notebooks or {}).items()}
    unknown = unknown_findings(texts)
    if unknown:
        raise BookBuildError("the pages cite findings that do not exist (known ids: "
                             + ", ".join(findings.IDS) + "):\n  " + "\n  ".join(unknown))


def _copy_for_reading(path: Path, target: Path, run_root: Path) -> None:
    """Copy an executed notebook into the book as a chapter: every code input collapsed behind
    a toggle (``hide-input``), the notebook's default parameters cell removed and the values
    this run was executed with shown in its place (papermill's injected cell, with paths
    relative to the run's parent folder, never this machine's)."""
    nb = json.loads(path.read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif "injected-parameters" in tags:
            cell["source"] = _shown_parameters("".join(cell.get("source", "")), run_root)
        if "remove-cell" not in tags and "hide-input" not in tags:
            tags.append("hide-input")
    target.write_text(json.dumps(nb, indent=1))


def _shown_parameters(source: str, run_root: Path) -> str:
    """Papermill's injected assignments as a reader should see them: the run folder as
    ``runs/<name>``, a packaged profile by its name, other paths by their file name, and
    overridden paths as the page shows any path (:func:`~knowshift.core.params.shown_path`)."""
    import ast

    lines = ["# The parameters this chapter was executed with (injected by papermill)"]
    profiles = Path(__file__).resolve().parents[1] / "profiles"
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            continue
        if name == "run_dir":
            value = f"runs/{Path(value).name}" if Path(value).resolve() == run_root.resolve() \
                else Path(value).name
        elif name == "profile" and isinstance(value, str) and value.endswith((".yaml", ".yml")):
            path = Path(value)
            value = path.stem if path.resolve().parent == profiles else path.name
        elif name == "overrides" and isinstance(value, dict):
            value = {k: shown_value(k, v) for k, v in value.items()}   # paths as typed
        lines.append(f"{name} = {value!r}")
    return "\n".join(lines)


def _error_outputs(path: Path) -> str:
    """The first error a notebook's stored outputs hold ('' if none)."""
    for cell in json.loads(path.read_text()).get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue')}"
    return ""


def build_html(run_dir: str | Path, sources: str | Path | None = None) -> Path:
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
    final = write_folder(run.book_html(), lambda tmp: os.replace(html, tmp))
    shutil.rmtree(scratch, ignore_errors=True)
    return final / "index.html"


PUBLISHED_MARK = ".knowshift-book"


def publish(run_dir: str | Path, target: str | Path) -> Path:
    """Copy the built book of ``run_dir`` to ``target`` for static hosting (a ``gh-pages``
    checkout, a web server's folder): the HTML, ``.nojekyll`` (GitHub Pages must not run Jekyll
    on ``_static/``) and a mark that lets the next publish replace it. A folder with other
    content is refused, never overwritten. Returns ``target/index.html``."""
    html, target = RunFolder(run_dir).book_html(), Path(target)
    if not (html / "index.html").is_file():
        raise BookBuildError(f"{html} has no built book: run `knowshift book` first")
    if target.exists() and any(target.iterdir()) and not (target / PUBLISHED_MARK).is_file():
        raise BookBuildError(f"{target} is not empty and holds no published knowshift book; "
                             "publish into an empty folder (or a previous publish)")

    def stage(tmp: Path) -> None:
        shutil.copytree(html, tmp, dirs_exist_ok=True)
        tmp.chmod(0o755)                    # a temporary folder is private; a site is not
        (tmp / ".nojekyll").write_text("")
        (tmp / PUBLISHED_MARK).write_text(f"{Path(run_dir).resolve()}\n")
    return write_folder(target, stage) / "index.html"

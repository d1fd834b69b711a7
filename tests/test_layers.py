"""The package's layers point one way, and the folders show them: each subpackage imports only
the ones below it (imports inside functions included), no import cycle, analysis stages that
read tables without importing torch, and run-folder paths spelt out only in the layout."""

import ast
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import knowshift
from knowshift.core.layout import STAGES
from knowshift.core.provenance import PACKAGE_DIR, import_graph

# Subpackage -> its layer; "" is the package's top (the CLI, the pipeline, the walk-through).
# A module may import its own subpackage and any lower layer, never its own layer's neighbour.
LAYERS = {"core": 0, "engine": 1, "study": 2, "audit": 3, "book": 3, "": 4}


def subpackage(module: str) -> str:
    return module.rpartition(".")[0]


def against_the_layers(graph: dict[str, set[str]]) -> list[str]:
    """The imports that point up or sideways: ``a -> b`` where b's subpackage is not a's and
    not in a lower layer."""
    wrong = []
    for module, imported in sorted(graph.items()):
        here = subpackage(module)
        for dep in sorted(imported):
            there = subpackage(dep)
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} -> {dep}")
    return wrong


def test_every_module_lives_in_a_declared_layer():
    graph = import_graph()
    assert {subpackage(m) for m in graph} == set(LAYERS)
    assert all(subpackage(m) in LAYERS for m in graph)
    for name in LAYERS:
        if name:
            assert (PACKAGE_DIR / name / "__init__.py").is_file()


def test_imports_point_down_the_layers():
    graph = import_graph()
    assert "study.facts" in graph["pipeline"] and "study.offline_facts" in graph["study.facts"]
    assert against_the_layers(graph) == []


def test_an_upward_import_is_found(tmp_path):
    """The rule read on a copy of the package with two imports added against it: one up from the
    bottom layer inside a function, one sideways between the audit and the book."""
    root = tmp_path / "knowshift"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    stats = root / "core" / "stats.py"
    stats.write_text(stats.read_text() + "\n\ndef _up():\n    from ..study import slick\n")
    scope = root / "audit" / "scope.py"
    scope.write_text(scope.read_text() + "\nfrom ..book import build\n")
    assert against_the_layers(import_graph(root)) == ["audit.scope -> book.build",
                                                     "core.stats -> study.slick"]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_bottom_modules_import_almost_nothing():
    graph = import_graph()
    assert graph["core.answers"] == set() and graph["core.errors"] == set()
    assert graph["core.schema"] == {"core.answers"}
    assert graph["core.params"] <= {"core.errors", "core.layout", "core.schema"}
    assert graph["core.layout"] <= {"core.errors"}
    assert graph["core.files"] == set() and graph["core.provenance"] == set()


def test_analysis_stages_do_not_import_torch():
    code = ("import sys\n"
            "import knowshift.study.dynamics, knowshift.study.regression\n"
            "import knowshift.study.categories, knowshift.study.mitigations\n"
            "import knowshift.study.checkpoints, knowshift.study.findings\n"
            "import knowshift.study.figures, knowshift.core.scoring, knowshift.core.params\n"
            "import knowshift.core.layout\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


RUN_PATH = re.compile(r"^(facts|slick|finetune|dynamics|regression|categories|mitigations|"
                      r"audit|book|notebooks|\.stamps)/")


def test_run_folder_paths_are_spelt_out_only_in_the_layout():
    declared = {p for s in STAGES for p in s.products.values()}
    assert declared and all(RUN_PATH.match(p) for p in declared)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.relative_to(PACKAGE_DIR).as_posix() == "core/layout.py":
            continue
        strings = [n.value for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        spelt = [s for s in strings if RUN_PATH.match(s) or s in declared]
        assert not spelt, f"{path.name} spells run-folder paths {spelt}"


@pytest.mark.parametrize("old", sorted(knowshift.MOVED))
def test_a_module_of_the_flat_layout_still_imports_with_a_warning(old):
    new = knowshift.MOVED[old]
    code = ("import importlib, warnings\n"
            "warnings.simplefilter('error')\n"
            f"try:\n    importlib.import_module('knowshift.{old}')\n"
            "except FutureWarning as w:\n    print(w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"knowshift.{old} moved to knowshift.{new}; import it from there"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = __import__(f"knowshift.{old}", fromlist=["_"])
    assert module is sys.modules[f"knowshift.{new}"]


def test_the_tests_mirror_the_layers():
    """One folder of tests per layer, and ``top`` for the modules above them (the CLI, the
    pipeline, the planner, the GPU checks); only the package-wide checks stay at the root."""
    tests = Path(__file__).parent
    folders = {p.name for p in tests.iterdir()
               if p.is_dir() and p.name not in ("data", "__pycache__")}
    assert folders == {*(name for name in LAYERS if name), "top"}
    assert sorted(p.name for p in tests.glob("test_*.py")) == ["test_layers.py", "test_links.py"]

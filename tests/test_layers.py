"""The package's layers point one way: no import cycle (imports inside functions included),
analysis stages that read tables without importing torch, and run-folder paths spelt out only in
the layout."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import knowshift
from knowshift.layout import STAGES
from knowshift.provenance import import_graph

PACKAGE = Path(knowshift.__file__).parent


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
    assert "facts" in graph["pipeline"] and "offline_facts" in graph["facts"]   # graph is real
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_bottom_layer_imports_nothing_above_it():
    graph = import_graph()
    assert graph["answers"] == set() and graph["errors"] == set()
    assert graph["schema"] == {"answers"}
    assert graph["params"] <= {"errors", "schema"}
    assert graph["layout"] <= {"errors"}
    assert graph["files"] == set() and graph["provenance"] == set()


def test_analysis_stages_do_not_import_torch():
    code = ("import sys\n"
            "import knowshift.dynamics, knowshift.regression, knowshift.categories\n"
            "import knowshift.mitigations, knowshift.checkpoints, knowshift.comparison\n"
            "import knowshift.figures, knowshift.scoring, knowshift.params, knowshift.layout\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


RUN_PATH = re.compile(r"^(facts|slick|finetune|dynamics|regression|categories|mitigations|"
                      r"audit|book|notebooks|\.stamps)/")


def test_run_folder_paths_are_spelt_out_only_in_the_layout():
    declared = {p for s in STAGES for p in s.products.values()}
    assert declared and all(RUN_PATH.match(p) for p in declared)
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "layout.py":
            continue
        strings = [n.value for n in ast.walk(ast.parse(path.read_text()))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        spelt = [s for s in strings if RUN_PATH.match(s) or s in declared]
        assert not spelt, f"{path.name} spells run-folder paths {spelt}"

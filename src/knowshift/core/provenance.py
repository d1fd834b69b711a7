"""What made a result: the code part of every stage stamp and cache key.

A key covers, for the knowshift modules a computation imports (directly or not, at module level
or inside functions):

- each module's source, **normalized**: parsed and unparsed without its docstrings and comments,
  so rewording a docstring, a comment or the layout of a line invalidates nothing, while any
  change to what the code does (a string it uses included) invalidates everything built with it;
- the package data files those modules read (:data:`DATA_FILES`, byte for byte);
- the versions of the third-party distributions those modules import, and of the ones
  :data:`IMPLIED` by them (the tokenizer library behind ``transformers``), and of Python.

What every key ignores, declared here and tested: docstrings, comments and formatting; the
modules in :data:`NOT_FOLLOWED` (a key stops there: they report, choose where work runs, name
paths or declare parameters whose values enter the keys instead); the distributions in
:data:`REPORTING_LIBRARIES`; the profile YAML files, whose effect enters every stamp through the
resolved parameters. What each cached result is keyed by, and what its key leaves out besides,
is :data:`KEYS`. Everything is read from the source files, never by importing them, so a stamp
costs no torch import."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name

# Package data read by a module (paths relative to the module's folder, folders read whole).
DATA_FILES = {"audit.report": ("templates",), "workplan": ("shapes",)}
# Package data no key covers, with why.
UNKEYED_DATA = {"profiles": "a profile's values enter every stamp as resolved parameters"}
# Modules no key follows (a key stops there; what they import counts only where a keyed module
# imports it too), with why.
NOT_FOLLOWED = {
    "core.progress": "draws progress bars and ETA files",
    "core.errors": "names errors and words their messages",
    "engine.executor": "chooses where a piece runs (this process, a worker, a SLURM job), never "
                       "what it computes",
    "core.provenance": "computes the keys; a change to what they cover changes them by itself",
    "core.params": "declares the parameters; their values enter every key they affect (a "
                   "stage's parameters in its stamp, SliCK's and fine-tuning's configs in "
                   "theirs), so their help, checks and display text change no result",
    "core.layout": "names where products lie in a run folder; a stage reads and writes them by "
                   "name, and its stamp records the products it wrote",
}
# Distributions that compute a result without being imported by knowshift itself.
IMPLIED = {"transformers": ("tokenizers", "safetensors")}
# Distributions that only show progress.
REPORTING_LIBRARIES = ("tqdm",)


@dataclass(frozen=True)
class KeyScope:
    """One kind of kept result and the code its key covers: the closure of ``modules`` less
    :data:`NOT_FOLLOWED` and ``ignores`` (module -> why), and the data it is keyed by besides."""
    kept: str
    where: str
    modules: tuple[str, ...]
    data: str
    ignores: dict[str, str] = field(default_factory=dict)


# Every cached result whose key has a code part, declared once (docs/keys.md reads as this
# table; tests/core/test_provenance.py holds the keys to it). A stage's stamp is keyed by the
# code its notebook imports (``pipeline.stage_key``), with the same rules.
KEYS = {
    "slick-chunk": KeyScope(
        "a SliCK chunk (relation x exemplar set x decoding)", "<run>/slick/cache/<key>/",
        ("study.slick",),
        "the model, the SliCK config, the questions and answers, the exemplar pool (id, "
        "relation, question, answer)",
        {"study.facts": "draws the study set and the exemplar pool, which the key holds as "
                        "data (their fingerprints)"}),
    "finetune-run": KeyScope(
        "a fine-tuning run (seed x variant)",
        "<run>/finetune/cache/variants/seed<s>-<variant>-<key>.parquet",
        ("study.finetune_run",),
        "the model, the fine-tuning config with its seed, the set's examples (id, question, "
        "target), the held-out questions (id, question, answers), whether it is tested every "
        "epoch"),
    "book": KeyScope(
        "the book", "<run>/.stamps/book.json", ("book.build",),
        "the stages' stamps, the book sources, the run's executed notebooks (and, for the "
        "reference run, the stamps of the replication shown beside it)"),
}


def _module_path(module: str, root: Path) -> Path:
    """``study.slick`` -> ``root/study/slick.py``."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def package_modules(root: Path = PACKAGE_DIR) -> list[str]:
    """Every module of the package by its dotted name below the package (``study.slick``),
    package ``__init__`` files aside (they hold docstrings and the moved-module map)."""
    return sorted(".".join(p.relative_to(root).with_suffix("").parts)
                  for p in root.rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


@lru_cache(maxsize=None)
def _parse(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _tree(module: str, root: Path) -> ast.Module:
    path = _module_path(module, root)
    return _parse(path, path.stat().st_mtime_ns)


def _own(dotted: str, names, root: Path) -> set[str]:
    """The package's modules named by ``from <dotted> import <names>`` (``dotted`` below the
    package, "" for the package itself): each name that is a module, else ``dotted`` itself.
    Old module names (:data:`knowshift.MOVED`) count as the modules they moved to."""
    from .. import MOVED
    found = set()
    for name in names:
        candidate = f"{dotted}.{name}" if dotted else name
        candidate = MOVED.get(candidate, candidate)
        if _module_path(candidate, root).is_file():
            found.add(candidate)
        elif dotted:
            found.add(MOVED.get(dotted, dotted))
    return found or ({MOVED.get(dotted, dotted)} if dotted else set())


def _imported(tree: ast.AST, module: str = "",
              root: Path = PACKAGE_DIR) -> tuple[set[str], set[str]]:
    """(knowshift modules, top-level third-party or stdlib modules) that ``tree`` imports;
    ``module`` is the dotted name of the module the tree is (relative imports resolve from
    its package)."""
    own, other = set(), set()
    here = module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                own |= _own(".".join([*base, *([name] if name else [])]),
                            [a.name for a in node.names], root)
            elif name == PACKAGE or name.startswith(PACKAGE + "."):
                own |= _own(name[len(PACKAGE) + 1:], [a.name for a in node.names], root)
            else:
                other.add(name.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == PACKAGE:
                    own |= _own(rest, [], root) if rest else set()
                else:
                    other.add(top)
    return own, other


def import_graph(root: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the knowshift modules it imports, at module level or inside functions."""
    graph = {}
    for module in package_modules(root):
        own, _ = _imported(_tree(module, root), module, root)
        graph[module] = {m for m in own if _module_path(m, root).is_file()} - {module}
    return graph


def closure(modules, root: Path = PACKAGE_DIR, stop=()) -> list[str]:
    """``modules`` and every knowshift module they import, directly or not; a module in
    ``stop`` is neither included nor followed."""
    graph, seen, todo = import_graph(root), set(), [m for m in modules if m not in stop]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(m for m in graph[module] if m not in stop)
    return sorted(seen)


def notebook_modules(notebook: Path, root: Path = PACKAGE_DIR) -> list[str]:
    """The knowshift modules a notebook's code cells import."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
    own = _imported(ast.parse("\n".join(lines)), "", root)[0]
    return sorted(m for m in own if _module_path(m, root).is_file())


def normalized_source(module: str, root: Path = PACKAGE_DIR) -> str:
    """The module's code without docstrings and comments, in one canonical layout."""
    path = _module_path(module, root)
    return _normalized(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=None)
def _normalized(path: Path, mtime_ns: int) -> str:
    """Cached by modification time, like :func:`_parse`: each SliCK slice of an audit keys
    its cache with the same code."""
    tree = ast.parse(path.read_text(), filename=str(path))     # a tree of its own to strip
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _data_files(module: str, root: Path) -> dict[str, str]:
    files = {}
    for entry in DATA_FILES.get(module, ()):
        path = _module_path(module, root).parent / entry
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if f.is_file() and "__pycache__" not in f.parts:
                files[f.relative_to(root).as_posix()] = _digest(f.read_bytes())
    return files


@lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions(modules, root: Path = PACKAGE_DIR) -> list[str]:
    """The third-party distributions that ``modules`` import (not their closure)."""
    by_module = _distributions_by_module()
    found = set()
    for module in modules:
        for top in _imported(_tree(module, root), module, root)[1]:
            if top in sys.stdlib_module_names or top == PACKAGE:
                continue
            for dist in by_module.get(top, [top]):
                found.update([dist, *IMPLIED.get(dist, ())])
    return sorted(found - set(REPORTING_LIBRARIES))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def code_key(modules, root: Path = PACKAGE_DIR, ignores=()) -> dict:
    """The code part of a key for a computation that imports ``modules``: a hash of each
    module's normalized source and data files, and the library versions (see the module
    docstring for what it ignores; ``ignores``: further modules not followed)."""
    keyed = closure(modules, root, stop={*NOT_FOLLOWED, *ignores})
    return {
        "modules": {m: _digest(normalized_source(m, root).encode()) for m in keyed},
        "data": {k: v for m in keyed for k, v in _data_files(m, root).items()},
        "libraries": {d: _version(d) for d in distributions(keyed, root)}
                     | {"python": ".".join(map(str, sys.version_info[:2]))},
    }


def key_of(name: str, root: Path = PACKAGE_DIR) -> dict:
    """The code part of the key of the kept result ``name`` of :data:`KEYS`."""
    scope = KEYS[name]
    return code_key(scope.modules, root, scope.ignores)


def changes(old: dict, new: dict) -> list[str]:
    """What differs between two code keys, in words (for telling why a stage is stale)."""
    said = []
    for part in ("modules", "data", "libraries"):
        a, b = old.get(part, {}), new.get(part, {})
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if differ:
            said.append(f"{part} {', '.join(differ)}")
    return said

"""What made a result: the code part of every stage stamp and cache key.

A key covers, for the knowshift modules a computation imports (directly or not, at module level
or inside functions):

- each module's source, **normalized**: parsed and unparsed without its docstrings and comments,
  so rewording a docstring, a comment or the layout of a line invalidates nothing, while any
  change to what the code does (a string it uses included) invalidates everything built with it;
- the package data files those modules read (:data:`DATA_FILES`, byte for byte);
- the versions of the third-party distributions those modules import, and of the ones
  :data:`IMPLIED` by them (the tokenizer library behind ``transformers``), and of Python.

What a key ignores, declared here and tested: docstrings, comments and formatting; the modules
in :data:`REPORTING_ONLY` (they draw progress or word errors and cannot change a written value);
the distributions in :data:`REPORTING_LIBRARIES`; the profile YAML files, whose effect enters
every stamp through the resolved parameters instead. Everything is read from the source files,
never by importing them, so a stamp costs no torch import."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name

# Package data read by a module (paths relative to the module's folder, folders read whole).
DATA_FILES = {"audit.report": ("templates",), "workplan": ("shapes",)}
# Package data no key covers, with why.
UNKEYED_DATA = {"profiles": "a profile's values enter every stamp as resolved parameters"}
# Modules that only report (progress bars and ETA files; exception classes and their messages)
# or choose where work runs (the executor: the same functions run in a job as in the stage).
REPORTING_ONLY = ("core.progress", "core.errors", "engine.executor")
# Distributions that compute a result without being imported by knowshift itself.
IMPLIED = {"transformers": ("tokenizers", "safetensors")}
# Distributions that only show progress.
REPORTING_LIBRARIES = ("tqdm",)


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


def closure(modules, root: Path = PACKAGE_DIR) -> list[str]:
    """``modules`` and every knowshift module they import, directly or not."""
    graph, seen, todo = import_graph(root), set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
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


def code_key(modules, root: Path = PACKAGE_DIR) -> dict:
    """The code part of a key for a computation that imports ``modules``: a hash of each
    module's normalized source and data files, and the library versions (see the module
    docstring for what it ignores)."""
    keyed = [m for m in closure(modules, root) if m not in REPORTING_ONLY]
    return {
        "modules": {m: _digest(normalized_source(m, root).encode()) for m in keyed},
        "data": {k: v for m in keyed for k, v in _data_files(m, root).items()},
        "libraries": {d: _version(d) for d in distributions(keyed, root)}
                     | {"python": ".".join(map(str, sys.version_info[:2]))},
    }


def changes(old: dict, new: dict) -> list[str]:
    """What differs between two code keys, in words (for telling why a stage is stale)."""
    said = []
    for part in ("modules", "data", "libraries"):
        a, b = old.get(part, {}), new.get(part, {})
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if differ:
            said.append(f"{part} {', '.join(differ)}")
    return said

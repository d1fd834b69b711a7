"""Run the study's notebooks through papermill in study order, skipping stages that are current.

A stage is current when its stamp (see :meth:`RunFolder.stamp`) records the fingerprint of its
key (:func:`stage_key`: its parameters, its notebook's code cells, the code its notebook imports
with the libraries that code uses (:mod:`knowshift.core.provenance`), and the stamps of the
stages whose products it reads (``core.layout.STAGES``, ``reads``)), and its products are the
ones it recorded (same size and modification time). A change so stales the stage it touches and
the stages downstream of it, no other. A stale stage is reported with what changed; a current one gets its notebook's prose (markdown cells,
display tags) copied into its executed notebook (:func:`refresh_prose`), so the book shows edited
prose without a rerun. Parameters that name a file or folder are read against the caller's
directory and reach the stages resolved. Everything a run will need (the parameters, the profile,
the model and fact sources, the device, the sizes of the fine-tuning sets) is checked before the
first stage runs. ``force`` reruns the named stages with their caches emptied. Executed notebooks
land in the run's ``notebooks/`` folder; a failed one is kept as ``<name>.failed.ipynb`` and
nothing already written is touched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm
from traitlets.config import Config

from .book.build import build_html, confirmation, sources_dir
from .core.errors import FactFileError, KnowshiftError, ParameterError, StageFailedError
from .core.files import fingerprint, remove_temporaries, write_json, write_text
from .core.layout import (REPOSITORY, STAGE_ENV, STAGE_NAMES, STAGES, RunFolder, Stage, inputs,
                          run_dir_for, with_inputs)
from .core.params import CALLER_DIR_ENV, DEFAULT_PROFILE, Params, resolve
from .core.progress import Watcher
from .core.provenance import PACKAGE_DIR, _digest, changes, code_key, key_of, notebook_modules
from .engine import executor, host, models
from .study import facts, finetune_sets

TRACEBACK_LINES = 15        # of a failed cell, shown in the terminal


# Notebook cell tags that change how a notebook runs (the rest only change how it is shown):
# papermill injects the parameters after the cell tagged `parameters` (and replaces a cell
# tagged `injected-parameters`); nbclient skips a cell tagged `skip-execution` and lets one
# tagged `raises-exception` fail.
EXECUTION_TAGS = ("parameters", "injected-parameters", "raises-exception", "skip-execution")


def code_cells(notebook: dict) -> list[list]:
    """A notebook's code cells (``notebook`` as read from its JSON) as they run: each one's
    source and its :data:`EXECUTION_TAGS`, in order."""
    return [["".join(c.get("source", "")),
             sorted(set(c.get("metadata", {}).get("tags", [])) & set(EXECUTION_TAGS))]
            for c in notebook.get("cells", []) if c.get("cell_type") == "code"]


def notebook_code_key(path: str | Path) -> str:
    """The notebook part of a stage's key: a hash of its code cells (:func:`code_cells`) only.
    Markdown cells, outputs, execution counts, cell ids and metadata other than the tags that
    change execution are left out, so rewording a chapter's prose reruns no stage. (It lives
    here, not in ``core.provenance``, whose source enters the SliCK and fine-tuning keys.)"""
    cells = code_cells(json.loads(Path(path).read_text()))
    return _digest(json.dumps(cells).encode())


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` (``$KNOWSHIFT_NOTEBOOKS`` overrides)."""
    env = os.environ.get("KNOWSHIFT_NOTEBOOKS")
    return Path(env) if env else REPOSITORY / "notebooks"


def _files_hash(root: Path, paths) -> str:
    """A hash of files' names (relative to ``root``) and contents, for stamps."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _products_state(folder: RunFolder, stage_name: str) -> dict[str, list[int]] | None:
    """Size and modification time of each required product (None if one is missing): a
    product rewritten since the stamp, e.g. by running the notebook by hand with other
    parameters, makes the stage stale."""
    state = {}
    for path in folder.outputs(stage_name):
        if not path.is_file():
            return None
        st = path.stat()
        state[path.relative_to(folder.root).as_posix()] = [st.st_size, st.st_mtime_ns]
    return state


def check_sources(params: Params, stages: list[str], folder: RunFolder | None = None,
                  where: executor.Executor = executor.Executor()) -> None:
    """Refuse, before any work, a model, device or fact source that ``stages`` would need and
    that is not there, and fine-tuning sets larger than the questions they are drawn from:
    than the study's train questions, or, where SliCK's labels are already in ``folder`` and
    SliCK will not rerun, than its categories."""
    needed = {n for s in stages for n in params.for_stage(s)}
    if "device" in needed and where.kind != "slurm":
        device, *_ = models.pick_device(params.device, params.precision)  # SLURM: in each job
        executor.check_workers(where, device.type)
    if "facts" in needed:
        facts.check_source(params.facts)
    if "model" in needed:
        models.check_source(params.model)
    if "finetune" not in stages:
        return
    wanted = {"d_size": params.d_size,
              "pure_size": params.pure_size if params.pure_categories
              and params.pure_size != "auto" else 0}
    for name, size in wanted.items():
        if size > params.n_train:
            raise ParameterError(f"{name} {size} is more than the study's n_train "
                                 f"{params.n_train} train questions it is drawn from")
    if folder is not None and "slick" not in stages and folder.path("slick").is_file():
        problem = finetune_sets.size_problem(
            folder.read("slick"), params.d_size, list(params.unknown_shares), params.pure_size,
            list(params.pure_categories), list(params.mitigation_shares))
        if problem:
            raise ParameterError(problem)


def run(profile: str = DEFAULT_PROFILE, run_dir: str | Path | None = None,
        stages: list[str] | None = None, overrides: dict | None = None,
        force: bool = False, book: bool | None = None, log=print, progress=None,
        executor_spec: str | None = None) -> Path:
    """Run ``stages`` (all by default) of ``profile`` with ``overrides``, with the stages they
    read from where those are not current, in study order; then build the book (by default when all stages run); returns the run
    folder. The bars (stages, and the progress inside SliCK and fine-tuning) go to the stream
    ``progress`` (default: standard error). ``executor_spec`` (default: ``$KNOWSHIFT_EXECUTOR``,
    else local) says where the stages' pieces run (:mod:`knowshift.engine.executor`)."""
    overrides = dict(overrides or {})
    spec = executor_spec if executor_spec is not None else os.environ.get(executor.ENV, "")
    where = executor.parse(spec)                # a bad spec is refused before any work
    params = resolve(profile, overrides).with_paths_resolved(Path.cwd())
    # the stages get the resolved paths (their kernels run in notebooks/)
    passed = {**{k: params.plain()[k] for k in overrides},
              **{k: params.plain()[k] for k in params.path_names()}}
    if Path(profile).suffix in (".yaml", ".yml"):
        profile = str(Path(profile).resolve())       # the notebooks run in notebooks/
    run_dir = run_dir_for(profile, run_dir).resolve()
    folder = RunFolder(run_dir)
    wanted = stages or STAGE_NAMES
    unknown = [s for s in wanted if s not in STAGE_NAMES]
    if unknown:
        raise ParameterError(f"unknown stage(s) {unknown}; stages are {STAGE_NAMES}")
    steps = stage_status(params, folder, wanted, forced=wanted if force else ())
    if folder.root.is_dir():        # what a run killed mid-write left (no stage runs yet)
        remove_temporaries(folder.root)
        for stray in folder.notebooks().glob(".*.tmp.ipynb"):
            stray.unlink()
    check_sources(params, [step.stage.name for step in steps if not step.current], folder,
                  where)
    if not where.local:
        log(f"[knowshift] pieces of SliCK and fine-tuning run on {where.describe()}; logs in "
            f"{folder.root / '.jobs'}")

    bar = tqdm(steps, desc="knowshift stages", unit="stage", file=progress)
    for step in bar:
        stage = step.stage
        bar.set_postfix_str(stage.name)
        if step.current:
            refresh_prose(notebooks_dir() / stage.notebook, folder.notebook(stage.name))
            log(f"[knowshift] {stage.name}: current, skipped")
            continue
        log(f"[knowshift] {stage.name}: {step.reason}")
        if step.forced and stage.cache:
            shutil.rmtree(folder.cache(stage.name), ignore_errors=True)
        injected = {"run_dir": str(run_dir), "profile": str(profile), "overrides": passed}
        with Watcher(folder.progress(stage.name), stage.name, stream=progress), \
                _environment({CALLER_DIR_ENV: str(Path.cwd()), executor.ENV: spec,
                              STAGE_ENV: stage.name}):
            _execute(notebooks_dir() / stage.notebook, folder, injected)
        _check_products(folder, stage)
        write_json({"stage": stage.name, "stamp": step.stamp, **step.key,
                    "products": _products_state(folder, stage.name),
                    "built": host.built(step.key["params"])}, folder.stamp(stage.name))
        log(f"[knowshift] {stage.name}: done -> {folder.notebook(stage.name)}")
    if book if book is not None else stages is None:
        build_book(folder, fingerprint({s.stage.name: s.stamp for s in steps}), force=force,
                   log=log)
    return run_dir


@dataclass(frozen=True)
class Step:
    """One stage as planned: its key and stamp, and why it must run (None if it is current)."""
    stage: Stage
    key: dict
    stamp: str
    forced: bool
    reason: str | None

    @property
    def current(self) -> bool:
        return self.reason is None


def stage_key(stage: Stage, params: Params, upstream: dict[str, str],
              root: Path = PACKAGE_DIR) -> dict:
    """Everything a stage's products depend on: its parameters, its notebook's code cells
    (:func:`notebook_code_key`: not its prose or stored outputs), the code it imports (package
    ``root``), the bytes of the fact files it reads (``facts.source_files``) and ``upstream``,
    the stamps of the stages it reads (by name)."""
    notebook = notebooks_dir() / stage.notebook
    if not notebook.is_file():
        raise KnowshiftError(f"notebook {notebook} is missing")
    own = params.for_stage(stage.name)
    sources = {}
    if "facts" in own:
        try:
            files = facts.source_files(own.facts)
        except FactFileError:           # refused by check_sources, after the device
            files = None
        if files != []:
            sources["facts"] = (_files_hash(Path(own.facts).expanduser(), files)
                                if files else "missing")
    return {"params": own.plain(), "notebook": notebook_code_key(notebook),
            "code": code_key(notebook_modules(notebook), root), "sources": sources,
            "upstream": upstream}


def stage_status(params: Params, folder: RunFolder, stages, forced=(),
                 root: Path = PACKAGE_DIR) -> list[Step]:
    """``stages`` and the stages they read from, in study order, with their stamps and whether
    each is current in ``folder``; a stage in ``forced`` is never current."""
    steps, stamps = [], {}
    for stage in (s for s in STAGES if s.name in with_inputs(stages)):
        key = stage_key(stage, params, {n: stamps[n] for n in inputs(stage.name)}, root)
        stamp = stamps[stage.name] = fingerprint(key)
        record = folder.stamp_record(stage.name)
        reason = _staleness(record, key, stamp, folder, stage.name)
        if stage.name in forced:
            reason = "forced, caches emptied" if stage.cache else "forced"
        steps.append(Step(stage, key, stamp, stage.name in forced, reason))
    return steps


def _staleness(record: dict, key: dict, stamp: str, folder: RunFolder,
               stage_name: str) -> str | None:
    """Why a stage is not current (None if it is), from the key its stamp records."""
    if not record:
        return "not run yet"
    if record.get("stamp") != stamp:
        if not isinstance(record.get("code"), dict):
            return "stale (its stamp records no key to compare)"
        said = [f"{part} changed" for part in ("params", "notebook", "sources")
                if record.get(part, {}) != key[part]]
        before = record.get("upstream")
        changed = [n for n in key["upstream"]
                   if not isinstance(before, dict) or before.get(n) != key["upstream"][n]]
        if changed:
            said.append(f"{' and '.join(changed)}, which it reads, changed")
        said += [f"{c} changed" for c in changes(record["code"], key["code"])]
        return f"stale ({'; '.join(said) or 'key changed'})"
    if record.get("products") is None or (
            record["products"] != _products_state(folder, stage_name)):
        return "stale (its products were rewritten or removed)"
    return None


def refresh_prose(notebook: Path, executed: Path) -> bool:
    """Give a current stage's executed notebook the prose of its ``notebook``: every cell as it
    is there (markdown, a code cell's metadata such as display tags), with each code cell's
    stored outputs and papermill's injected parameters kept from ``executed``. Does nothing
    (False) when ``executed`` is missing, already matches, or runs other code than
    ``notebook`` (a notebook run by hand); True when it rewrote ``executed``."""
    if not executed.is_file():
        return False
    source, ran = json.loads(notebook.read_text()), json.loads(executed.read_text())

    def injected(cell: dict) -> bool:
        return "injected-parameters" in cell.get("metadata", {}).get("tags", [])

    kept = {**ran, "cells": [c for c in ran["cells"] if not injected(c)]}
    if code_cells(kept) != code_cells(source):
        return False
    # papermill's cells, by the number of code cells before them
    after: dict[int, list] = {}
    ran_code = []
    for cell in ran["cells"]:
        if injected(cell):
            after.setdefault(len(ran_code), []).append(cell)
        elif cell.get("cell_type") == "code":
            ran_code.append(cell)
    by_id = {c.get("id"): c for c in ran["cells"] if "id" in c}
    cells, n = list(after.get(0, [])), 0
    for cell in source["cells"]:
        if cell.get("cell_type") != "code":
            old = by_id.get(cell.get("id"), {})        # unchanged: kept with its run record
            cells.append(old if _as_shown(old) == _as_shown(cell) else cell)
            continue
        old, n = ran_code[n], n + 1
        cells += [{**cell, "outputs": old.get("outputs", []),
                   "execution_count": old.get("execution_count"),
                   "metadata": {**old.get("metadata", {}), **cell.get("metadata", {})}},
                  *after.get(n, [])]
    if list(map(_as_shown, cells)) == list(map(_as_shown, ran["cells"])):
        return False
    write_text(json.dumps({**ran, "cells": cells}, indent=1, ensure_ascii=False) + "\n",
               executed)
    return True


def _as_shown(cell: dict) -> dict:
    """A cell as the book shows it: without what executing it recorded in its metadata
    (papermill's status and times, nbclient's timings, the empty tag list papermill adds), its
    source as one string (stored as a string or a list of lines)."""
    meta = {k: v for k, v in cell.get("metadata", {}).items()
            if k not in ("papermill", "execution") and not (k == "tags" and not v)}
    return {**cell, "source": "".join(cell.get("source", "")), "metadata": meta}


def _check_products(folder: RunFolder, stage: Stage) -> None:
    missing = [str(p.relative_to(folder.root)) for p in folder.outputs(stage.name)
               if not p.is_file()]
    if missing:
        raise StageFailedError(f"stage {stage.name} finished without writing {missing}")


def build_book(folder: RunFolder, upstream: str, force: bool = False, log=print) -> Path:
    """Build the book unless it is current (same stages, book sources and book code)."""
    sources = sources_dir()
    beside = confirmation(folder.root)          # a replication shown beside this run
    executed = [p for p in (folder.notebook(n) for n in STAGE_NAMES) if p.is_file()]
    stamp = fingerprint(upstream, key_of("book"), _files_hash(sources, (
        p for p in sources.rglob("*") if p.is_file() and "_build" not in p.parts)),
        beside and [RunFolder(beside).stamp_record(n).get("stamp") for n in STAGE_NAMES],
        _files_hash(folder.root, executed))     # their prose, refreshed without a rerun
    index = folder.book_index()
    if not force and index.is_file() and folder.stamp_record("book").get("stamp") == stamp:
        log(f"[knowshift] book: current, skipped -> {index}")
        return index
    index = build_html(folder.root)
    write_json({"stage": "book", "stamp": stamp}, folder.stamp("book"))
    log(f"[knowshift] book: done -> {index}")
    return index


@contextmanager
def _environment(values: dict[str, str]):
    """``values`` set in the environment the stage kernels inherit, for one stage."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_config(sockets: str) -> Config:
    """The stage kernel talks to papermill over local IPC sockets in ``sockets`` where the OS
    has them: no open TCP ports, and no warning that they are unencrypted."""
    if os.name != "posix":
        return Config()
    return Config({"KernelManager": {"transport": "ipc",
                                     "ip": os.path.join(sockets, "kernel")}})


def _execute(nb_in: Path, folder: RunFolder, parameters: dict) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = folder.notebooks()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{nb_in.name}.tmp.ipynb"
    failed = out_dir / f"{nb_in.stem}.failed.ipynb"
    try:
        with tempfile.TemporaryDirectory(prefix="knowshift-kernel-") as sockets:
            papermill.execute_notebook(str(nb_in), str(tmp), parameters=parameters,
                                       kernel_name="python3", progress_bar=False,
                                       cwd=str(nb_in.parent), config=_kernel_config(sockets))
    except PapermillExecutionError as err:
        os.replace(tmp, failed)
        trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err.traceback or [])).strip()
        shown = "\n".join(trace.splitlines()[-TRACEBACK_LINES:])
        raise StageFailedError(f"{nb_in.name} failed: {err.ename}: {err.evalue} "
                               f"(see {failed})\n{shown}") from err
    os.replace(tmp, out_dir / nb_in.name)

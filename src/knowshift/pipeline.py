"""Run the study's notebooks in order through papermill, skipping stages that are current.

A stage is current when its outputs exist and its stamp (``run_dir/.stamps/<stage>.json``)
matches the fingerprint of its parameters, its notebook, the knowshift source and the stamps of
the stages before it. Executed notebooks land in ``run_dir/notebooks/``; a failed one is kept as
``<name>.failed.ipynb`` and nothing already written is touched."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .config import check_all, load_profile
from .errors import KnowshiftError, ParameterError
from .io import fingerprint, write_json

PACKAGE_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str
    params: tuple[str, ...]
    outputs: tuple[str, ...]


STAGES = (
    Stage("facts", "01_facts.ipynb",
          ("facts", "relations", "n_train", "n_dev", "n_test", "n_ood", "seed"),
          ("facts/facts.parquet", "facts/study.parquet")),
    Stage("slick", "02_slick.ipynb",
          ("model", "device", "n_exemplar_sets", "k_shot", "n_samples", "temperature",
           "max_new_tokens", "batch_size", "seed"),
          ("slick/slick.parquet", "slick/figures/category_mix.png",
           "slick/figures/category_vs_popularity.png")),
    Stage("finetune", "03_finetune.ipynb",
          ("model", "device", "d_size", "unknown_shares", "pure_size", "pure_categories",
           "mitigation_shares", "method", "learning_rate", "epochs", "ft_batch_size", "lora_r",
           "seed"),
          ("finetune/results.parquet", "finetune/metrics.parquet",
           "finetune/checkpoints.parquet", "finetune/figures/accuracy_vs_unknown.png")),
    Stage("dynamics", "04_dynamics.ipynb", (),
          ("dynamics/fit_curves.parquet", "dynamics/figures/fit_curves.png")),
    Stage("regression", "05_regression.ipynb", (),
          ("regression/coefficients.parquet", "regression/figures/regression.png")),
    Stage("categories", "06_categories.ipynb", (),
          ("categories/accuracy_by_category.parquet", "categories/figures/category_heatmap.png")),
    Stage("mitigations", "07_mitigations.ipynb", (),
          ("mitigations/comparison.parquet", "mitigations/figures/mitigations.png")),
    Stage("audit", "08_audit.ipynb",
          ("model", "device", "audit_size", "n_exemplar_sets", "k_shot", "n_samples",
           "temperature", "max_new_tokens", "batch_size", "seed"),
          ("audit/audit.json", "audit/report.html", "audit/filtered.jsonl", "audit/idk.jsonl")),
)


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` (``$KNOWSHIFT_NOTEBOOKS`` overrides)."""
    env = os.environ.get("KNOWSHIFT_NOTEBOOKS")
    return Path(env) if env else PACKAGE_DIR.parent.parent / "notebooks"


def _files_hash(root: Path, paths) -> str:
    """A hash of files' names (relative to ``root``) and contents, for stamps."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _source_hash() -> str:
    return _files_hash(PACKAGE_DIR, PACKAGE_DIR.rglob("*.py"))


class ExecutionError(KnowshiftError):
    """A stage notebook raised; the message carries the notebook's own error."""


def run_folder(profile: str, run_dir: str | Path | None = None) -> Path:
    """Where a profile's run lives: ``run_dir`` if given, else ``runs/<profile name>``."""
    return Path(run_dir or Path("runs") / Path(profile).stem)


def run(profile: str = "workshop", run_dir: str | Path | None = None,
        stages: list[str] | None = None, overrides: dict | None = None,
        force: bool = False, book: bool | None = None, log=print) -> Path:
    """Run ``stages`` (all by default, always in study order) of ``profile`` with
    ``overrides``, then build the book (by default when all stages run); returns the run
    folder."""
    params = load_profile(profile) | check_all(overrides or {})
    run_dir = run_folder(profile, run_dir).resolve()
    known = [s.name for s in STAGES]
    wanted = stages or known
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ParameterError(f"unknown stage(s) {unknown}; stages are {known}")
    last = max(known.index(w) for w in wanted)
    source, upstream = _source_hash(), ""
    bar = tqdm(STAGES[:last + 1], desc="knowshift stages", unit="stage")
    for stage in bar:
        bar.set_postfix_str(stage.name)
        nb_in = notebooks_dir() / stage.notebook
        if not nb_in.is_file():
            raise KnowshiftError(f"notebook {nb_in} is missing")
        stage_params = {k: params[k] for k in stage.params if k in params}
        stamp = fingerprint(stage_params, hashlib.sha256(nb_in.read_bytes()).hexdigest(),
                            source, upstream)
        upstream = stamp
        stamp_file = run_dir / ".stamps" / f"{stage.name}.json"
        current = (stamp_file.is_file() and f'"{stamp}"' in stamp_file.read_text()
                   and all((run_dir / o).is_file() for o in stage.outputs))
        if current and not (force and stage.name in wanted):
            log(f"[knowshift] {stage.name}: current, skipped")
            continue
        _execute(nb_in, run_dir, stage_params)
        missing = [o for o in stage.outputs if not (run_dir / o).is_file()]
        if missing:
            raise ExecutionError(f"stage {stage.name} finished without writing {missing}")
        write_json({"stage": stage.name, "stamp": stamp, "params": stage_params}, stamp_file)
        log(f"[knowshift] {stage.name}: done -> {run_dir / 'notebooks' / stage.notebook}")
    if book if book is not None else stages is None:
        build_book(run_dir, upstream, source, force=force, log=log)
    return run_dir


def build_book(run_dir: Path, upstream: str, source: str, force: bool = False,
               log=print) -> Path:
    """Build the book unless it is current (same stages, book sources and knowshift source)."""
    from .book import build, sources_dir

    sources = sources_dir()
    stamp = fingerprint(upstream, source, _files_hash(sources, (
        p for p in sources.rglob("*") if p.is_file() and "_build" not in p.parts)))
    stamp_file = run_dir / ".stamps" / "book.json"
    index = run_dir / "book" / "html" / "index.html"
    if (not force and index.is_file() and stamp_file.is_file()
            and f'"{stamp}"' in stamp_file.read_text()):
        log(f"[knowshift] book: current, skipped -> {index}")
        return index
    index = build(run_dir)
    write_json({"stage": "book", "stamp": stamp}, stamp_file)
    log(f"[knowshift] book: done -> {index}")
    return index


def _execute(nb_in: Path, run_dir: Path, params: dict) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{nb_in.name}.tmp.ipynb"
    try:
        papermill.execute_notebook(str(nb_in), str(tmp), parameters=params | {
            "run_dir": str(run_dir)}, kernel_name="python3", progress_bar=False,
            cwd=str(nb_in.parent))
    except PapermillExecutionError as err:
        os.replace(tmp, out_dir / f"{nb_in.stem}.failed.ipynb")
        raise ExecutionError(f"{nb_in.name} failed: {err.ename}: {err.evalue} "
                             f"(see {out_dir / (nb_in.stem + '.failed.ipynb')})") from err
    os.replace(tmp, out_dir / nb_in.name)

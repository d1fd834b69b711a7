"""Stage 3: fine-tuning. Draws the study's fine-tuning sets from the SliCK table once per seed,
trains every (seed, variant) once (:mod:`knowshift.study.finetune_run`, full or LoRA, by the
schedule of :mod:`knowshift.study.finetune_schedule`) and writes the per-question rows with
the per-epoch metrics and checkpoints read from them.

Every variant is trained once per fine-tuning seed (the ``seeds`` parameter): the seed draws the
sets and the training order, so each seed is one replicate of the study. The per-question rows
are kept, not the weights. A finished (seed, variant) run is never retrained: its file is keyed
by the model, the set, the held-out questions, the config and the code that trains and
evaluates (``core.provenance.KEYS["finetune-run"]``); an interrupted one restarts from
scratch."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from ..core.errors import ParameterError
from ..core.files import fingerprint, remove_temporaries, write_parquet
from ..core.layout import RunFolder
from ..core.progress import Progress
from ..core.provenance import key_of
from ..engine import executor, work
from ..engine.models import resolve_model, with_precision
from ..engine.training import FinetuneConfig, encode  # noqa: F401  (read from here before)
from . import checkpoints
from .finetune_run import load_base, train_piece, train_to_file, train_variant  # noqa: F401
from .finetune_schedule import TESTED_ONLY_IN_DISTRIBUTION, training_runs  # noqa: F401
from .finetune_sets import build_sets, eval_sets


def study_sets(table: pd.DataFrame, p) -> pd.DataFrame:
    """Every fine-tuning set of the study, drawn from the SliCK table once per seed."""
    return pd.concat([build_sets(table, p.d_size, list(p.unknown_shares), p.pure_size,
                                 list(p.pure_categories), list(p.mitigation_shares),
                                 seed=seed).assign(seed=seed) for seed in p.seeds],
                     ignore_index=True)


def run_variants(sets: pd.DataFrame, held_out: dict[str, pd.DataFrame], model_name: str,
                 device: str, config: FinetuneConfig, out_dir: str | Path,
                 progress: bool = True, progress_file: str | Path | None = None,
                 jobs_dir: str | Path | None = None) -> pd.DataFrame:
    """Train every (seed, variant) in ``sets`` with the seed in ``config`` replaced by the
    set's own (resumable: one results file per finished run, keyed by the model, the set's
    examples and the config). Mixes are tested after every epoch, other kinds at their
    checkpoints only (see :func:`~knowshift.study.finetune_run.train_variant`); category-pure sets are tested
    in-distribution only, as the paper's Table 2 reads them. The runs not yet finished are
    trained here, one after another, or as jobs of the executor that ``$KNOWSHIFT_EXECUTOR``
    names (:mod:`knowshift.engine.executor`; records and logs in ``jobs_dir``)."""
    out_dir = Path(out_dir)
    runs = []
    identity, code = resolve_model(model_name)[1], key_of("finetune-run")
    for seed, variant, examples, asked, test_every_epoch in training_runs(sets, held_out):
        run_config = replace(config, seed=int(seed))
        key = fingerprint(identity, asdict(run_config),
                          examples[["id", "question", "target"]].to_dict("list"),
                          {k: v[["id", "question", "answers"]].to_dict("list")
                           for k, v in asked.items()}, test_every_epoch, code)
        runs.append((f"seed{seed}-{variant}", examples, asked, run_config, test_every_epoch,
                     out_dir / "variants" / f"seed{seed}-{variant}-{key}.parquet"))
    todo = [run for run in runs if not run[-1].is_file()]
    where = executor.current()
    remove_temporaries(out_dir)                 # what a killed run left half-written
    with Progress(progress_file, len(runs) * config.epochs, "fine-tuning", "epoch",
                  initial=(len(runs) - len(todo)) * config.epochs, enabled=progress) as bar:
        if where.local:
            base = (load_base(model_name, device, config)
                    if config.method == "lora" and todo else None)
            for i, (_, examples, asked, run_config, every_epoch, path) in enumerate(todo, 1):
                def tick(epoch, i=i, seed=run_config.seed,
                         variant=examples["variant"].iloc[0]):
                    bar.update(1, f"run {i}/{len(todo)}: seed {seed} {variant}, epoch "
                                  f"{epoch}/{config.epochs}")
                train_to_file(model_name, device, examples, asked, run_config, every_epoch,
                              path, tick=tick, base=base, progress=progress)
        else:
            pieces = [executor.Piece(name, train_piece, (model_name, device, examples, asked,
                                                          run_config, every_epoch, path),
                                     config.epochs)
                      for name, examples, asked, run_config, every_epoch, path in todo]
            for ledger in executor.run_pieces(pieces, where, Path(jobs_dir or out_dir / "jobs"),
                                              bar, scratch=[out_dir]):
                work.add(ledger)
    return pd.concat([pd.read_parquet(run[-1]) for run in runs], ignore_index=True)


def run_stage(run_dir: str | Path, params, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Stage 3: build the fine-tuning sets from the SliCK table once per seed, fine-tune a
    fresh base model on each (seed, set), and write the products ``sets``, ``results`` (per
    question and epoch), ``metrics`` (per seed, variant and epoch) and ``checkpoints`` (EARLY_STOP and CONVERGENCE
    per seed and variant)."""
    p = params.for_stage("finetune")
    run = RunFolder(run_dir)
    table = run.read("slick")
    held_out = eval_sets(table)
    empty = [name for name, df in held_out.items() if df.empty]
    if empty:
        raise ParameterError(f"the study set has no {' / '.join(empty)} questions; EARLY_STOP "
                             "needs dev questions and the analyses need test and OOD ones "
                             "(raise n_dev / n_test / n_ood)")
    sets = study_sets(table, p)
    write_parquet(sets, run.path("sets"))
    config = with_precision(FinetuneConfig.from_params(p),
                            executor.current().device_for(p.device))
    with work.recording() as done, work.phase("finetune training"):
        results = run_variants(sets, held_out, p.model, p.device, config,
                               run.cache("finetune"), progress=progress,
                               progress_file=run.progress("finetune"),
                               jobs_dir=run.jobs("finetune"))
    work.write(done, run.work("finetune"))
    meta = sets.groupby("variant", sort=False)[["kind", "unknown_share", "category"]].first()
    results = results.join(meta, on="variant")
    metrics = checkpoints.per_epoch(results).join(meta, on="variant")
    sizes = sets.groupby(["seed", "variant"]).size().rename("d_size")
    metrics = metrics.join(sizes, on=["seed", "variant"])
    selected = checkpoints.select(metrics)
    write_parquet(results, run.path("results"))
    write_parquet(metrics, run.path("metrics"))
    write_parquet(selected, run.path("checkpoints"))
    return {"sets": sets, "results": results, "metrics": metrics, "checkpoints": selected}

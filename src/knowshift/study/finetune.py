"""Fine-tuning (full or LoRA) on one fine-tuning set, evaluated after every epoch.

The training steps themselves (format, loss, optimiser) are :mod:`knowshift.engine.training`'s.
Deterministic given the seed.

Every variant is trained once per fine-tuning seed (the ``seeds`` parameter): the seed draws the
sets and the training order, so each seed is one replicate of the study. After each epoch the
train examples and the dev questions are answered greedily and scored; the test and OOD
questions after each epoch for the mixes (the regression reads every epoch) and at EARLY_STOP
and CONVERGENCE for the other kinds. The per-question rows are kept, not the weights. A
finished (seed, variant) run is never retrained (its file is keyed by the model, the set, the
held-out questions, the config and the code that trains and evaluates, see
:func:`knowshift.core.provenance.code_key`); an interrupted one restarts from scratch.
``precision: bf16`` runs the passes under bf16 autocast."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.errors import ParameterError
from ..core.files import fingerprint, remove_temporaries, write_parquet
from ..core.layout import RunFolder
from ..core.progress import Progress
from ..core.provenance import code_key
from ..core.scoring import score
from ..engine import executor, work
from ..engine.evaluation import predict
from ..engine.models import load_model, resolve_model, with_precision
from ..engine.training import (FinetuneConfig, encode, make_optimizer, prepare, release,
                               train_epoch)
from . import checkpoints
from .finetune_sets import build_sets, eval_sets

# Held-out sets the category-pure variants are not tested on (stage 6 reads their in-distribution
# test accuracy by category, as the paper's Table 2; nothing reads their OOD accuracy).
TESTED_ONLY_IN_DISTRIBUTION = ("ood",)


def evaluate_epoch(model, tok, train: pd.DataFrame, held_out: dict[str, pd.DataFrame],
                   config: FinetuneConfig, phase: str = "finetune evaluation") -> pd.DataFrame:
    """Per-question results on the train set (against its targets) and the held-out sets,
    answered in one call (batches by length across the sets)."""
    sets = {name: df for name, df in {"train": train, **held_out}.items() if not df.empty}
    with work.phase(phase):
        answered = iter(predict(model, tok, [q for df in sets.values() for q in df["question"]],
                                config.eval_batch_size, config.max_new_tokens,
                                config.prompt_template))
    frames = []
    for name, df in sets.items():
        preds = [next(answered) for _ in range(len(df))]
        answers = ([[t] for t in df["target"]] if name == "train" else df["answers"].tolist())
        scored = score(preds, answers)
        category = df["slick_category"] if name == "train" else df["category"].astype(str)
        frames.append(scored.assign(set=name, id=df["id"].to_numpy(),
                                    relation=df["relation"].to_numpy(),
                                    slick_category=category.to_numpy(),
                                    known=df["known"].to_numpy(),
                                    relabelled=df["relabelled"].to_numpy()
                                    if name == "train" else False))
    return pd.concat(frames, ignore_index=True)


def _dev_accuracy(rows: pd.DataFrame) -> float:
    return rows.loc[rows["set"] == "dev", "correct"].mean()


def load_base(model_name: str, device: str, config: FinetuneConfig):
    """(model, tokenizer) of the base model, with the weight dtype its method trains in."""
    return load_model(model_name, device, config.precision,
                      trains_every_weight=config.method == "full")


def train_variant(model_name: str, device: str, examples: pd.DataFrame,
                  held_out: dict[str, pd.DataFrame], config: FinetuneConfig,
                  progress: bool = True, desc: str = "",
                  test_every_epoch: bool = True,
                  on_epoch: Callable[[int], None] | None = None,
                  base=None) -> pd.DataFrame:
    """Fine-tune a fresh copy of the base model on ``examples`` and return per-question
    results for every epoch (columns: epoch, set, id, prediction, correct, abstained, ...).
    For LoRA, ``base`` (model, tokenizer) is a loaded base model to put fresh adapters on and
    take them off after, so that a stage loads it once; full fine-tuning loads its own copy.

    The train and dev sets are answered after every epoch. The test sets (every held-out set
    but dev) are answered after every epoch when ``test_every_epoch`` (the regression reads
    them all); otherwise only at EARLY_STOP (the first epoch of best dev accuracy, whose
    weights are kept) and at CONVERGENCE (the last epoch), the two checkpoints the
    analyses read: the same rows at those epochs, for a fraction of the time. The best-dev
    weights are kept on the host (for LoRA, the adapters only)."""
    torch.manual_seed(config.seed)
    if base is None or config.method != "lora":
        base = load_base(model_name, device, config)
    model, tok = base
    model = prepare(model, config)
    model.train()
    try:
        return _train(model, tok, examples, held_out, config, progress, desc,
                      test_every_epoch, on_epoch)
    finally:
        release(model, config).eval()


def _train(model, tok, examples, held_out, config, progress, desc, test_every_epoch,
           on_epoch) -> pd.DataFrame:
    data = encode(tok, examples["question"].tolist(), examples["target"].tolist(),
                  config.prompt_template)
    optim = make_optimizer(model, config)
    order_rng = torch.Generator().manual_seed(config.seed)
    each_epoch = {k: v for k, v in held_out.items() if test_every_epoch or k == "dev"}
    tests = {k: v for k, v in held_out.items() if k not in each_epoch}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    results, best, best_state, best_epoch = [], -1.0, None, 0
    bar = tqdm(range(1, config.epochs + 1), desc=desc or "epochs", unit="epoch",
               disable=not progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        order = torch.randperm(len(data), generator=order_rng).tolist()
        losses = train_epoch(model, optim, data, order, config.ft_batch_size, tok.pad_token_id)
        train_s = time.perf_counter() - start
        rows = evaluate_epoch(model, tok, examples, each_epoch, config)
        if tests and (dev := _dev_accuracy(rows)) > best:
            best, best_epoch = dev, epoch
            best_state = {n: p.detach().to("cpu", copy=True) for n, p in trainable.items()}
        if tests and epoch == config.epochs:
            rows = pd.concat([rows, evaluate_epoch(model, tok, examples.iloc[:0], tests,
                                                   config)], ignore_index=True)
        rows = rows.assign(epoch=epoch, train_loss=sum(losses) / len(losses),
                           train_seconds=train_s,
                           eval_seconds=time.perf_counter() - start - train_s)
        results.append(rows)
        bar.set_postfix(loss=f"{rows['train_loss'].iloc[0]:.3f}",
                        epoch_s=f"{time.perf_counter() - start:.0f}")
        if on_epoch is not None:
            on_epoch(epoch)
    if tests and best_epoch != config.epochs:
        with torch.no_grad():
            for n, p in trainable.items():
                p.copy_(best_state[n])
        early = evaluate_epoch(model, tok, examples.iloc[:0], tests, config,
                               phase="finetune early-stop evaluation")
        keep = results[best_epoch - 1].iloc[0]
        results.append(early.assign(epoch=best_epoch, train_loss=keep["train_loss"],
                                    train_seconds=keep["train_seconds"],
                                    eval_seconds=keep["eval_seconds"]))
    return pd.concat(results, ignore_index=True)


def training_runs(sets: pd.DataFrame, held_out: dict[str, pd.DataFrame]):
    """Per (seed, variant) of ``sets``: (seed, variant, its examples, the held-out sets it is
    asked, whether they are asked after every epoch). Mixes are tested after every epoch,
    other kinds at their checkpoints only; category-pure sets in-distribution only."""
    for seed, variant in dict.fromkeys(zip(sets["seed"], sets["variant"])):
        examples = sets[(sets["seed"] == seed) & (sets["variant"] == variant)].reset_index(
            drop=True)
        asked = {k: v for k, v in held_out.items()
                 if k not in TESTED_ONLY_IN_DISTRIBUTION or examples["kind"].iloc[0] != "pure"}
        yield seed, variant, examples, asked, bool((examples["kind"] == "mix").all())


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
    checkpoints only (see :func:`train_variant`); category-pure sets are tested
    in-distribution only, as the paper's Table 2 reads them. The runs not yet finished are
    trained here, one after another, or as jobs of the executor that ``$KNOWSHIFT_EXECUTOR``
    names (:mod:`knowshift.engine.executor`; records and logs in ``jobs_dir``)."""
    out_dir = Path(out_dir)
    runs = []
    identity, code = resolve_model(model_name)[1], code_key(["study.finetune"])
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


def train_to_file(model_name: str, device: str, examples: pd.DataFrame,
                  asked: dict[str, pd.DataFrame], config: FinetuneConfig, test_every_epoch: bool,
                  path: Path, tick: Callable[[int], None], base=None,
                  progress: bool = False) -> None:
    """One (seed, variant) run, its per-question rows written to ``path`` (atomically: a run
    killed before the end leaves no file); ``tick(epoch)`` after each epoch."""
    seed, variant = config.seed, examples["variant"].iloc[0]
    rows = train_variant(model_name, device, examples, asked, config, progress,
                         desc=f"seed {seed} {variant}", test_every_epoch=test_every_epoch,
                         on_epoch=tick, base=base)
    rows.insert(0, "variant", variant)
    rows.insert(0, "seed", int(seed))
    write_parquet(rows, path)


def train_piece(model_name, device, examples, asked, config, test_every_epoch, path,
                tick) -> dict:
    """:func:`train_to_file` as an executor's job: its work counted in the job's own process
    and returned (``{phase: counts}``) for the stage to add up."""
    with work.recording() as done, work.phase("finetune training"):
        train_to_file(model_name, device, examples, asked, config, test_every_epoch, path,
                      tick=lambda epoch: tick(1))
    return work.counts_of(done)


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

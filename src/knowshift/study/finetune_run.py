"""One fine-tuning run (a seed and a variant): train a fresh copy of the base model on its set
and answer its questions after each epoch, by the schedule of
:mod:`knowshift.study.finetune_schedule`. The training steps (format, loss, optimiser) are
:mod:`knowshift.engine.training`'s. Deterministic given the seed.

This module and what it imports are the code a kept run is keyed by
(``core.provenance.KEYS["finetune-run"]``): training and evaluation, nothing that reports,
draws the sets or summarises the rows, so an edit there (or a statistics library's upgrade)
retrains nothing. ``precision: bf16`` runs the passes under bf16 autocast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.files import write_parquet
from ..core.scoring import score
from ..engine import work
from ..engine.evaluation import predict
from ..engine.models import load_model
from ..engine.training import (FinetuneConfig, encode, make_optimizer, prepare, release,
                               train_epoch)
from .finetune_schedule import EARLY_STOP_SET, early_stop_epoch, tested_when


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
    return rows.loc[rows["set"] == EARLY_STOP_SET, "correct"].mean()


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
    each_epoch, tests = tested_when(held_out, test_every_epoch)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    results, dev, best_state, best_epoch = [], {}, None, 0
    bar = tqdm(range(1, config.epochs + 1), desc=desc or "epochs", unit="epoch",
               disable=not progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        order = torch.randperm(len(data), generator=order_rng).tolist()
        losses = train_epoch(model, optim, data, order, config.ft_batch_size, tok.pad_token_id)
        train_s = time.perf_counter() - start
        rows = evaluate_epoch(model, tok, examples, each_epoch, config)
        dev[epoch] = _dev_accuracy(rows)
        if tests and early_stop_epoch(pd.Series(dev)) == epoch:     # a new EARLY_STOP
            best_epoch = epoch
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



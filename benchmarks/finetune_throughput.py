"""Fine-tuning throughput: training examples per second of knowshift's loop against a
``transformers.Trainer`` set up as a user would for the same job: the same model, examples,
batch size, learning rate, optimiser (AdamW, fused: the Trainer's default), constant learning
rate, no gradient clipping (our loop does not clip; the Trainer's default would clip), and the
same precision (bf16, ``auto``'s choice on a CPU with native bf16, gives the Trainer
``bf16=True``, its CPU autocast).

Fair timing: the two alternate (ours, Trainer, ours, ...), each repeat on a fresh copy of the
model for ``--epochs`` epochs; throughput is read from the epochs after the first (warm), the
median over ``--repeats``; the first step (one-off allocations) is reported apart. Per-epoch
evaluation is not timed here (see ``eval_throughput.py``).

    python benchmarks/finetune_throughput.py [--precision auto] [--examples 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from knowshift.core.params import PRECISIONS, default
from knowshift.engine.models import load_model, resolve_precision
from knowshift.study.facts import load_facts, select_relations
from knowshift.engine.training import (FinetuneConfig, collate, encode, make_optimizer,
                                       prepare, train_epoch)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


class Clock(TrainerCallback):
    """Seconds of the first step and of each epoch, as the Trainer runs them."""

    def __init__(self):
        self.first_step = None
        self.epochs = []

    def on_epoch_begin(self, args, state, control, **kw):
        self._epoch = self._step = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self.first_step is None:
            self.first_step = time.perf_counter() - self._step

    def on_epoch_end(self, args, state, control, **kw):
        self.epochs.append(time.perf_counter() - self._epoch)


def ours(examples, config: FinetuneConfig) -> tuple[float, list[float]]:
    torch.manual_seed(0)
    model, tok = load_model("default", "cpu", config.precision)
    model = prepare(model, config)
    model.train()
    data = encode(tok, examples["question"].tolist(), examples["target"].tolist())
    optim = make_optimizer(model, config)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    start = time.perf_counter()
    train_epoch(model, optim, data, order[:config.ft_batch_size], config.ft_batch_size,
                tok.pad_token_id)
    first = time.perf_counter() - start
    epochs = []
    for _ in range(config.epochs):
        start = time.perf_counter()
        train_epoch(model, optim, data, order, config.ft_batch_size, tok.pad_token_id)
        epochs.append(time.perf_counter() - start)
    return first, epochs


def trainer(examples, config: FinetuneConfig) -> tuple[float, list[float]]:
    model, tok = load_model("default", "cpu", "fp32")
    model.train()
    data = encode(tok, examples["question"].tolist(), examples["target"].tolist())

    def collator(batch):
        ids, mask, labels = collate(batch, tok.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    clock = Clock()
    with tempfile.TemporaryDirectory() as out_dir:
        Trainer(model=model, train_dataset=Pairs(data), data_collator=collator,
                callbacks=[clock],
                args=TrainingArguments(
                    output_dir=out_dir, per_device_train_batch_size=config.ft_batch_size,
                    num_train_epochs=config.epochs, learning_rate=config.learning_rate,
                    weight_decay=config.weight_decay, lr_scheduler_type="constant",
                    warmup_steps=0, max_grad_norm=0.0, bf16=config.precision == "bf16",
                    logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
                    seed=0, dataloader_num_workers=0, disable_tqdm=True)).train()
    return clock.first_step, clock.epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precision", choices=PRECISIONS, default=default("precision"))
    ap.add_argument("--examples", type=int, default=default("d_size"))
    ap.add_argument("--batch-size", type=int, default=default("ft_batch_size"))
    ap.add_argument("--epochs", type=int, default=2, help="per repeat; the first is warm-up")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    facts = select_relations(load_facts("offline"), ["P17", "P36", "P57", "P19"])
    rows = facts[facts["split"] == "train"].groupby("relation").head(args.examples // 4)
    examples = rows.assign(target=rows["answer"]).reset_index(drop=True)
    config = FinetuneConfig(epochs=args.epochs, ft_batch_size=args.batch_size,
                            precision=resolve_precision("cpu", args.precision))
    times = {"knowshift loop": [], "transformers.Trainer": []}
    firsts = {name: [] for name in times}
    for _ in range(args.repeats):
        for name, run in (("knowshift loop", ours), ("transformers.Trainer", trainer)):
            first, epochs = run(examples, config)
            firsts[name].append(first)
            times[name].extend(epochs[1:])
    n = len(examples)
    print(f"training examples: {n}, batch {args.batch_size}, precision {config.precision}, "
          f"{args.repeats} repeats x {args.epochs - 1} warm epoch(s), "
          f"{torch.get_num_threads()} threads")
    rate = {}
    for name, t in times.items():
        rate[name] = n / statistics.median(t)
        print(f"{name:21s}: {rate[name]:6.2f} examples/s (median epoch "
              f"{statistics.median(t):.2f} s; first step {statistics.median(firsts[name]):.2f} s)")
    print(f"training ratio (ours / Trainer): {rate['knowshift loop'] / rate['transformers.Trainer']:.2f}")


if __name__ == "__main__":
    main()

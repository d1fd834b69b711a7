"""Fine-tuning throughput: training examples per second of knowshift's loop against a plain
``transformers.Trainer`` on the same data, model, batch size and optimiser (AdamW, full
fine-tuning; our loop's per-epoch evaluation is timed apart). Each side's first step, which
pays one-off allocation costs, is included in its time.

    python benchmarks/finetune_throughput.py [--examples 64] [--batch-size 8] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import Trainer, TrainingArguments

from knowshift.facts import load_facts, select_relations
from knowshift.finetune import FinetuneConfig, collate, encode, train_variant
from knowshift.models import load_model


class Pairs(torch.utils.data.Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    facts = select_relations(load_facts("offline"), ["P17", "P36", "P57", "P19"])
    rows = facts[facts["split"] == "train"].groupby("relation").head(args.examples // 4)
    examples = rows.assign(target=rows["answer"], slick_category="Unknown", known=False,
                           relabelled=False).reset_index(drop=True)
    n = len(examples) * args.epochs

    config = FinetuneConfig(epochs=args.epochs, ft_batch_size=args.batch_size, learning_rate=5e-5)
    start = time.perf_counter()
    out = train_variant("default", "cpu", examples, {}, config, progress=False)
    ours_train = out.groupby("epoch")["train_seconds"].first().sum()
    ours_total = time.perf_counter() - start

    model, tok = load_model("default", "cpu")
    data = encode(tok, examples["question"].tolist(), examples["target"].tolist())

    def collator(batch):
        ids, mask, labels = collate(batch, tok.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(model=model, train_dataset=Pairs(data), data_collator=collator,
                          args=TrainingArguments(
                              output_dir=out_dir, per_device_train_batch_size=args.batch_size,
                              num_train_epochs=args.epochs, learning_rate=5e-5,
                              lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                              logging_strategy="no", save_strategy="no", report_to=[],
                              use_cpu=True, seed=0, dataloader_num_workers=0,
                              disable_tqdm=True))
        start = time.perf_counter()
        trainer.train()
        hf = time.perf_counter() - start

    print(f"examples: {len(examples)} x {args.epochs} epochs, batch {args.batch_size}")
    print(f"knowshift loop     : {n / ours_train:6.2f} examples/s ({ours_train:.1f} s training;"
          f" {ours_total:.1f} s with per-epoch evaluation of the train set)")
    print(f"transformers.Trainer: {n / hf:6.2f} examples/s ({hf:.1f} s)")
    print(f"ratio (ours / Trainer): {hf / ours_train:.2f}")


if __name__ == "__main__":
    main()

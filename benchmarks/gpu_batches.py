"""Batches sized for a GPU, measured on a CPU with the default model (no GPU needed):

1. assembling a batch's key/value cache costs the same number of tensor operations at 64 and
   at 1024 rows (one placement per distinct prefix and layer, then one gather);
2. rows per decode step at the ``paper`` profile's SliCK settings (batch_size rows, N_ex 10,
   16 samples at T = 0.5 among the top 40, 4-shot), on one greedy and one sampled block of
   the offline facts: a row leaves its batch when its answer line ends, so a step holds fewer
   rows than the batch; the target is >= 512 rows per step.

    python benchmarks/gpu_batches.py [--blocks 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from knowshift.core.params import resolve
from knowshift.engine import work
from knowshift.engine.generation import _batch_cache, _prefix_states, complete_many
from knowshift.engine.models import load_model
from knowshift.study import facts
from knowshift.study.slick import Prompts, SlickConfig


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def cache_operations(net, tok, groups) -> dict[int, int]:
    states = [_prefix_states(net, tok(prefix)["input_ids"]) for prefix, *_ in groups[:3]]
    width = max(s[0][0].shape[2] for s in states)
    counts = {}
    for rows in (64, 1024):
        with Ops() as ops:
            _batch_cache(net, [states[i % len(states)] for i in range(rows)], width)
        counts[rows] = ops.count
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=1, help="blocks per pass to time")
    args = parser.parse_args()
    torch.set_num_threads(2)
    paper = resolve("paper", {})
    settings = {k: paper[k] for k in ("n_exemplar_sets", "n_samples", "temperature", "top_k",
                                      "k_shot", "max_new_tokens", "batch_size")}
    params = resolve("workshop", {**settings, "precision": "fp32"}).with_paths_resolved(Path.cwd())
    table, study = facts.draw(params.for_stage("facts"))
    config = SlickConfig.from_params(params)
    net, tok = load_model("default", "cpu", "fp32")
    ask = Prompts.build(tok, study, facts.exemplar_pool(table, study, "train"), config)
    everyone = ask.everyone()
    ops = cache_operations(net, tok, ask.prompt_groups(ask.blocks_for(everyone, 1)[0], everyone))
    print(f"cache assembly: {ops[64]} tensor operations at 64 rows, {ops[1024]} at 1024 rows")
    for mode, temperature, n in (("greedy", 0.0, 1),
                                 ("sample", config.temperature, config.n_samples)):
        with work.recording() as done, work.phase(mode):
            start = time.perf_counter()
            for block in ask.blocks_for(everyone, n)[:args.blocks]:
                complete_many(net, tok, ask.prompt_groups(block, everyone), temperature=temperature,
                              num_samples=n, top_k=config.top_k, batch_size=config.batch_size)
            seconds = time.perf_counter() - start
        t = done[mode]
        print(f"{mode}: {t.rows} rows in {t.batches} batches of <= {config.batch_size} rows; "
              f"{t.decode_steps} decode steps, {t.generated_tokens / t.decode_steps:.0f} rows "
              f"per decode step (target >= 512); {t.generated_tokens} tokens in "
              f"{seconds:.0f} s")


if __name__ == "__main__":
    main()

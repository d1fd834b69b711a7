"""Audit throughput: examples per second of `knowshift audit` on chat-format files built from
the offline fact set, a full audit beside a sampled one, in one run on the same machine and
with the workshop profile's SliCK settings (what `knowshift audit` uses by default).

    python benchmarks/audit_throughput.py [--full 1000] [--big 10000] [--sample 200]

Three audits: every example of a ``--full``-row file; ``--sample`` examples of the same file;
``--sample`` examples of a ``--big``-row file. Each row is one OpenAI-style conversation
(system, user question, assistant answer) about a fact of the study's relations, with a
``topic`` field and no relation labels, so exemplars come from the whole file. Timings
include reading the file and loading the model; SliCK caches are fresh for each audit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from knowshift.audit import judge as audit
from knowshift.core.params import resolve
from knowshift.study.facts import load_facts
from knowshift.study.slick import SlickConfig


def chat_file(path: Path, facts, n: int, seed: int) -> Path:
    rows = facts.sample(n, random_state=seed)
    with path.open("w", encoding="utf-8") as f:
        for question, answers, relation in zip(rows["question"], rows["answers"],
                                               rows["relation"]):
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "Answer with a name only."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": list(answers)[0]}],
                "topic": relation}, ensure_ascii=False) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", type=int, default=1000)
    parser.add_argument("--big", type=int, default=10000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    params = resolve("workshop")
    config = SlickConfig.from_params(params)
    facts = load_facts("offline")
    facts = facts[facts["relation"].isin(params.relations) & ~facts["ood"]]
    print(f"torch threads {torch.get_num_threads()}; SliCK: {config}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = chat_file(tmp / "full.jsonl", facts, args.full, seed=0)
        big = chat_file(tmp / "big.jsonl", facts, args.big, seed=1)
        runs = [("full audit", small, None), (f"--sample {args.sample}", small, args.sample),
                (f"--sample {args.sample}", big, args.sample)]
        rows = []
        for i, (what, path, sample) in enumerate(runs):
            start = time.perf_counter()
            report = audit.run(path, params.model, params.device, config, tmp / f"out{i}",
                               study="paper", progress=False, sample=sample)
            wall = time.perf_counter() - start
            rows.append((what, report["auditable"]["rows"], report["n_examples"], wall))
            print(f"{what:>14s} of {report['auditable']['rows']:6d} rows: labelled "
                  f"{report['n_examples']:5d} in {wall:6.1f} s = "
                  f"{report['n_examples'] / wall:5.2f} labelled/s, "
                  f"{report['auditable']['rows'] / wall:7.1f} file rows/s; Unknown "
                  f"{report['mix']['Unknown']['share']:.1%}"
                  + (f" [{report['mix']['Unknown']['low']:.1%}, "
                     f"{report['mix']['Unknown']['high']:.1%}]" if sample else ""), flush=True)
        full, sampled = rows[0][3], rows[1][3]
        print(f"ratio, same {args.full}-row file: the sampled audit took {sampled / full:.2f} "
              f"of the full audit's time ({full / sampled:.1f}x faster)")


if __name__ == "__main__":
    main()

"""SliCK throughput: questions labelled per second by knowshift against a naive loop (one
``generate`` call per question and exemplar set, greedy and sampled, no batching, no prefix
cache, no early stop, sampling for every question) on the same questions and model.

    python benchmarks/slick_throughput.py [--questions 48] [--sets 2] [--samples 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import GenerationConfig

from knowshift.core.answers import is_correct
from knowshift.core.schema import format_exemplars, format_question
from knowshift.engine.encoding import encode
from knowshift.engine.generation import complete_naive, first_line
from knowshift.engine.models import load_model
from knowshift.study.facts import exemplar_pool, load_facts, sample_study_set
from knowshift.study.slick import SlickConfig, categorize, draw_exemplar_sets, label_questions


def naive_label(net, tok, study, facts, config: SlickConfig) -> list[str]:
    pool = exemplar_pool(facts, study)
    sample = GenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=True,
                              temperature=config.temperature, top_k=0, top_p=1.0,
                              num_return_sequences=config.n_samples,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    cats = []
    for relation, group in study.groupby("relation", sort=True):
        sets = draw_exemplar_sets(pool, relation, config.n_exemplar_sets, config.k_shot,
                                  config.seed)
        for _, row in group.iterrows():
            greedy = sampled = 0
            for exemplars in sets:
                prefix = format_exemplars(exemplars["question"], exemplars["answer"])
                pred = complete_naive(net, tok, prefix, [format_question(row["question"])],
                                      max_new_tokens=config.max_new_tokens)[0]
                greedy += is_correct(pred, row["answers"])
                ids = torch.tensor([encode(tok, prefix + format_question(row["question"]))])
                with torch.no_grad():
                    out = net.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                       generation_config=sample)
                texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
                sampled += sum(is_correct(first_line(t), row["answers"]) for t in texts)
            cats.append(categorize(greedy / len(sets), sampled))
    return cats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--sets", type=int, default=2)
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    facts = load_facts("offline")
    study = sample_study_set(facts, args.questions // 2, 0, args.questions // 2, 0, seed=0)
    config = SlickConfig(n_exemplar_sets=args.sets, n_samples=args.samples, batch_size=48)
    net, tok = load_model("default", "cpu", "fp32")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        fast = label_questions(net, tok, study, exemplar_pool(facts, study), config, cache,
                               progress=False)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_label(net, tok, study.sort_values(["relation", "id"]), facts, config)
    t_naive = time.perf_counter() - start

    n = len(study)
    print(f"questions: {n}, exemplar sets: {args.sets}, samples per set: {args.samples}")
    print(f"knowshift : {n / t_fast:6.2f} questions/s ({t_fast:.1f} s)")
    print(f"naive loop: {n / t_naive:6.2f} questions/s ({t_naive:.1f} s)")
    print(f"SliCK ratio (ours / naive): {t_naive / t_fast:.1f}")
    fast = fast.sort_values(["relation", "id"])
    greedy = [c if c in ("HighlyKnown", "MaybeKnown") else "not known greedily" for c in naive]
    ours = [c if c in ("HighlyKnown", "MaybeKnown") else "not known greedily"
            for c in fast["category"].astype(str)]
    same = sum(a == b for a, b in zip(fast["category"].astype(str), naive))
    print(f"greedy-decided categories identical: {ours == greedy} (HighlyKnown, MaybeKnown, "
          f"rest); all four identical for {same}/{n} (sampling draws differ between the two, so "
          f"WeaklyKnown/Unknown may)")


if __name__ == "__main__":
    main()

"""Per-epoch evaluation throughput: knowshift's greedy answers (``evaluation.predict``: batches
by prompt length, rows leave the batch when their answer line ends) against plain batched
``model.generate`` (64 rows a call, greedy, stop at the newline) over the same questions, on a
model fine-tuned for two epochs; the correctness flags of the two must be identical in fp32.
Alternated, median of ``--repeats``; bf16 is timed too and its changed flags counted.

    python benchmarks/eval_throughput.py [--train 48] [--held-out 196] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import GenerationConfig

from knowshift.core.params import default
from knowshift.core.schema import format_question
from knowshift.core.scoring import score
from knowshift.engine.encoding import encode
from knowshift.engine.evaluation import predict
from knowshift.engine.generation import first_line
from knowshift.engine.models import load_model
from knowshift.study.facts import load_facts, select_relations
from knowshift.engine.training import FinetuneConfig
from knowshift.engine.training import encode as encode_examples
from knowshift.engine.training import make_optimizer, train_epoch

RELATIONS = ["P17", "P36", "P364", "P495", "P30", "P57", "P19", "P131"]


@torch.no_grad()
def generate_batched(model, tok, questions, batch_size, max_new_tokens) -> list[str]:
    """The plain path: ``model.generate`` on left-padded batches in the given order."""
    model.eval()
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                              stop_strings=["\n"])
    answers = []
    for start in range(0, len(questions), batch_size):
        enc = tok.pad({"input_ids": [encode(tok, format_question(q))
                                     for q in questions[start:start + batch_size]]},
                      return_tensors="pt")
        out = model.generate(**enc, generation_config=config, tokenizer=tok)
        answers += [first_line(t) for t in
                    tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)]
    return answers


def fine_tuned(examples, precision: str, state=None):
    model, tok = load_model("default", "cpu", precision)
    if state is None:
        config = FinetuneConfig(precision=precision)
        model.train()
        data = encode_examples(tok, examples["question"].tolist(), examples["target"].tolist())
        optim = make_optimizer(model, config)
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            order = torch.randperm(len(data), generator=gen).tolist()
            train_epoch(model, optim, data, order, config.ft_batch_size, tok.pad_token_id)
    else:
        model.load_state_dict(state)
    model.eval()
    return model, tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=default("d_size"))
    ap.add_argument("--held-out", type=int, default=default("n_dev") + default("n_test")
                    + default("n_ood"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    facts = select_relations(load_facts("offline"), RELATIONS)
    train = facts[facts["split"] == "train"].groupby("relation").head(
        args.train // len(RELATIONS)).assign(target=lambda d: d["answer"])
    held = facts[facts["split"] == "test"].sample(args.held_out, random_state=0)
    questions = train["question"].tolist() + held["question"].tolist()
    answers = [[a] for a in train["answer"]] + [list(a) for a in held["answers"]]
    size, cap = default("eval_batch_size"), default("max_new_tokens")

    model, tok = fine_tuned(train, "fp32")
    times = {"generate": [], "knowshift": []}
    preds = {}
    for _ in range(args.repeats):
        for name, run in (("generate", generate_batched), ("knowshift", predict)):
            start = time.perf_counter()
            preds[name] = run(model, tok, questions, size, cap)
            times[name].append(time.perf_counter() - start)
    flags = {k: score(v, answers) for k, v in preds.items()}
    same = ((flags["generate"][["correct", "abstained"]] == flags["knowshift"][
        ["correct", "abstained"]]).all(axis=1)).sum()

    bf16, _ = fine_tuned(train, "bf16", model.state_dict())
    t_bf16 = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        pred_bf16 = predict(bf16, tok, questions, size, cap)
        t_bf16.append(time.perf_counter() - start)
    changed = (score(pred_bf16, answers)["correct"] != flags["generate"]["correct"]).sum()

    n = len(questions)
    t_gen, t_ours, t_bf = (statistics.median(t) for t in (times["generate"],
                                                          times["knowshift"], t_bf16))
    print(f"questions: {n} ({len(train)} train, {len(held)} held-out), model fine-tuned 2 "
          f"epochs, {args.repeats} alternated repeats, {torch.get_num_threads()} threads")
    print(f"batched generate (fp32): {n / t_gen:6.2f} questions/s ({t_gen:.2f} s)")
    print(f"knowshift        (fp32): {n / t_ours:6.2f} questions/s ({t_ours:.2f} s); "
          f"identical correctness flags: {same}/{n}")
    print(f"knowshift        (bf16): {n / t_bf:6.2f} questions/s ({t_bf:.2f} s); "
          f"correctness flags changed against fp32: {changed}/{n}")
    print(f"evaluation ratio (ours / generate, fp32): {t_gen / t_ours:.2f}; bf16: {t_gen / t_bf:.2f}")


if __name__ == "__main__":
    main()

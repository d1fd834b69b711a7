"""Fine-tuning on the real default model: label masking, learning, resumability, run files
keyed by the code."""

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from knowshift.core.errors import ParameterError
from knowshift.core.provenance import PACKAGE_DIR
from knowshift.core.schema import format_question
from knowshift.core.scoring import score
from knowshift.engine.evaluation import predict
from knowshift.engine.generation import complete_naive
from knowshift.engine.models import load_model
from knowshift.study.facts import select_relations
from knowshift.engine.training import (FinetuneConfig, answer_loss, collate, encode,
                                       make_optimizer, train_epoch)
from knowshift.study.finetune import run_variants, train_variant


@pytest.mark.slow
def test_loss_is_on_the_answer_only(default_model):
    _, tok = default_model
    data = encode(tok, ["What is the capital of Kenya?", "Who directed the film Alien?"],
                  ["Nairobi", "Ridley Scott"])
    ids, mask, labels = collate(data, tok.pad_token_id)
    for row, (seq, n_prompt) in enumerate(data):
        assert (labels[row, :n_prompt] == -100).all()                  # no loss on the prompt
        target = tok.decode(labels[row, n_prompt:len(seq)])
        assert target in (" Nairobi\n", " Ridley Scott\n")
        assert (labels[row, len(seq):] == -100).all() and (mask[row, len(seq):] == 0).all()
    # pad == eos for SmolLM2: the answer's own end is still learned, padding is not
    assert tok.pad_token_id == tok.eos_token_id
    assert mask.sum().item() == sum(len(s) for s, _ in data)


@pytest.mark.slow
def test_answer_loss_is_the_models_own_loss(default_model):
    net, tok = default_model
    data = encode(tok, ["What is the capital of Kenya?", "Who directed the film Alien?",
                        "Which country is Lyon in?"], ["Nairobi", "Ridley Scott", "France"])
    ids, mask, labels = collate(data, tok.pad_token_id)
    with torch.no_grad():
        ours = answer_loss(net, ids, mask, labels)
        theirs = net(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


@pytest.mark.slow
def test_fast_evaluation_answers_as_plain_generate_on_a_fine_tuned_model(offline_facts):
    """The per-epoch evaluation path (length-sorted batches, finished rows dropped) gives the
    answers, hence the correctness flags, of one plain greedy ``generate`` per question, on a
    model whose answers fine-tuning has changed."""
    examples = _unknown_facts(offline_facts)
    model, tok = load_model("default", "cpu", "fp32")
    config = FinetuneConfig(epochs=3, learning_rate=3e-4, ft_batch_size=4)
    data = encode(tok, examples["question"].tolist(), examples["target"].tolist())
    optim = make_optimizer(model, config)
    model.train()
    for _ in range(config.epochs):
        train_epoch(model, optim, data, list(range(len(data))), 4, tok.pad_token_id)
    held = offline_facts[offline_facts["split"] == "test"].sample(24, random_state=1)
    questions = examples["question"].tolist() + held["question"].tolist()
    answers = [[t] for t in examples["target"]] + [list(a) for a in held["answers"]]
    fast = predict(model, tok, questions, batch_size=8, max_new_tokens=16)
    model.eval()
    plain = complete_naive(model, tok, "", [format_question(q) for q in questions],
                           max_new_tokens=16)
    assert fast == plain
    flags = score(fast, answers)
    assert flags["correct"].iloc[:len(examples)].mean() >= 0.5      # it learned its examples
    pd.testing.assert_frame_equal(flags, score(plain, answers))


def _unknown_facts(offline_facts, n=8):
    """Film directors: facts the 135M model does not know (all Unknown in the workshop run)."""
    films = select_relations(offline_facts, ["P57"])
    films = films[films["split"] == "train"].head(n)
    return pd.DataFrame({"id": films["id"], "relation": films["relation"],
                         "question": films["question"], "target": films["answer"],
                         "answers": films["answers"], "slick_category": "Unknown",
                         "known": False, "relabelled": False}).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("method, lr", [("full", 3e-4), ("lora", 3e-3)])
def test_a_variant_learns_its_training_set(offline_facts, method, lr):
    examples = _unknown_facts(offline_facts)
    config = FinetuneConfig(method=method, epochs=6, learning_rate=lr, ft_batch_size=4, seed=0)
    rows = train_variant("default", "cpu", examples, {}, config, progress=False)
    acc = rows[rows["set"] == "train"].groupby("epoch")["correct"].mean()
    assert acc.iloc[0] <= 0.25                      # new facts: not known at first
    assert acc.iloc[-1] >= 0.75 and acc.iloc[-1] > acc.iloc[0]
    loss = rows.groupby("epoch")["train_loss"].first()
    assert loss.iloc[-1] < loss.iloc[0] / 2


@pytest.mark.slow
def test_finished_variants_are_not_retrained(offline_facts, tmp_path):
    examples = _unknown_facts(offline_facts, 4).assign(variant="v1", kind="mix", seed=0,
                                                       unknown_share=1.0, category=None)
    config = FinetuneConfig(epochs=1, ft_batch_size=4)
    first = run_variants(examples, {}, "default", "cpu", config, tmp_path, progress=False)
    files = list((tmp_path / "variants").iterdir())
    stamp = files[0].stat().st_mtime_ns
    (tmp_path / "variants" / ".v2-partial.parquet.tmp").write_text("interrupted")
    again = run_variants(examples, {}, "default", "cpu", config, tmp_path, progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert files[0].stat().st_mtime_ns == stamp


# Fine-tunes one tiny variant with the knowshift package found first on PYTHONPATH.
RUN_ONE = """
import sys, pandas as pd
from knowshift.study.finetune import FinetuneConfig, run_variants
examples = pd.read_parquet(sys.argv[1])
run_variants(examples, {}, "default", "cpu", FinetuneConfig(epochs=1, ft_batch_size=4),
             sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_only_an_edit_to_training_or_evaluation_retrains(offline_facts, tmp_path):
    """The package copied, edited and imported in a fresh process, as a developer's edit is: a
    docstring, a parameter's help, the statistics code and a newer statsmodels and scipy (their
    metadata found first on the path) retrain nothing; training code does (evaluation code
    too: tests/top/test_pipeline.py)."""
    package = tmp_path / "src" / "knowshift"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    newer = tmp_path / "newer"
    for dist in ("statsmodels", "scipy"):
        (newer / f"{dist}-99.0.dist-info").mkdir(parents=True)
        (newer / f"{dist}-99.0.dist-info" / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 99.0\n")
    examples = _unknown_facts(offline_facts, 4).assign(variant="v1", kind="mix", seed=0,
                                                       unknown_share=1.0, category=None)
    examples.to_parquet(tmp_path / "examples.parquet")
    runs = tmp_path / "cache" / "variants"

    def run_files(*before):
        path = ":".join(map(str, (*before, package.parent)))
        subprocess.run([sys.executable, "-c", RUN_ONE, str(tmp_path / "examples.parquet"),
                        str(tmp_path / "cache")], check=True,
                       env=os.environ | {"PYTHONPATH": path})
        return {p.name: p.stat().st_mtime_ns for p in runs.iterdir()}

    def edit(name, old, new):
        path = package / name
        assert path.read_text().count(old) == 1, (name, old)
        path.write_text(path.read_text().replace(old, new, 1))

    first = run_files()
    assert len(first) == 1
    edit("engine/evaluation.py", '"""Closed-book', '"""Reworded: closed-book')
    edit("core/params.py", '"AdamW weight decay"', '"weight decay of AdamW"')
    edit("core/stats.py", "from __future__ import annotations",
         "from __future__ import annotations\nUNUSED = 1")
    assert run_files(newer) == first                        # nothing retrained
    edit("engine/training.py", "from __future__ import annotations",
         "from __future__ import annotations\nX = 1")
    again = run_files()
    assert len(again) == 2 and again.items() > first.items()   # retrained under a new key


@pytest.mark.slow
def test_checkpoint_only_testing_gives_the_every_epoch_rows_at_the_checkpoints(offline_facts):
    """Non-mix variants answer the test sets only at EARLY_STOP (weights kept in memory) and
    at the last epoch: those rows equal the ones an every-epoch run gives at those epochs."""
    examples = _unknown_facts(offline_facts)
    test = offline_facts[offline_facts["split"] == "test"]
    held = {name: df.assign(answers=df["answers"].map(list), category=df["relation"],
                            known=True)
            for name, df in (("dev", test.sample(12, random_state=2)),
                             ("test", test.sample(12, random_state=3)))}
    config = FinetuneConfig(epochs=4, learning_rate=3e-4, ft_batch_size=4, seed=0,
                            precision="fp32")      # bf16 answers depend a little on batching
    every = train_variant("default", "cpu", examples, held, config, progress=False)
    sparse = train_variant("default", "cpu", examples, held, config, progress=False,
                           test_every_epoch=False)
    cols = ["epoch", "set", "id", "prediction", "correct"]
    pd.testing.assert_frame_equal(every[every["set"] != "test"][cols].reset_index(drop=True),
                                  sparse[sparse["set"] != "test"][cols].reset_index(drop=True))
    dev = every[every["set"] == "dev"].groupby("epoch")["correct"].mean()
    chosen = {int(dev.idxmax()), config.epochs}
    tested = sparse[sparse["set"] == "test"]
    assert set(tested["epoch"]) == chosen
    key = ["epoch", "id"]
    pd.testing.assert_frame_equal(
        tested[cols].sort_values(key).reset_index(drop=True),
        every[(every["set"] == "test") & every["epoch"].isin(chosen)][cols]
        .sort_values(key).reset_index(drop=True))


def test_bad_finetune_config_is_one_clear_error():
    with pytest.raises(ParameterError, match=r"'method' must be one of \['full', 'lora'\]"):
        FinetuneConfig(method="qlora")
    with pytest.raises(ParameterError, match="'epochs' must be >= 1"):
        FinetuneConfig(epochs=0)


@pytest.mark.slow
def test_a_lora_stage_loads_the_base_model_once_and_its_adapters_leave_it_unchanged(
        offline_facts, tmp_path):
    """Two LoRA runs in one stage: one base load, and the second run's results are those of
    the same run on a freshly loaded base (the first run's adapters came off cleanly)."""
    from knowshift.engine import work
    examples = _unknown_facts(offline_facts, 4).assign(kind="mix", unknown_share=1.0,
                                                       category=None)
    sets = pd.concat([examples.assign(variant="a", seed=0), examples.assign(variant="b", seed=1)],
                     ignore_index=True)
    config = FinetuneConfig(method="lora", epochs=1, ft_batch_size=4, learning_rate=1e-3,
                            lora_r=8)
    with work.recording() as both:
        together = run_variants(sets, {}, "default", "cpu", config, tmp_path / "one",
                                progress=False)
    assert both["model load"].model_loads == 1
    with work.recording() as alone:
        second = run_variants(sets[sets["variant"] == "b"], {}, "default", "cpu", config,
                              tmp_path / "two", progress=False)
    assert alone["model load"].model_loads == 1
    pd.testing.assert_frame_equal(
        together[together["variant"] == "b"].drop(columns=["train_seconds", "eval_seconds"])
        .reset_index(drop=True),
        second.drop(columns=["train_seconds", "eval_seconds"]).reset_index(drop=True))
    with work.recording() as full:
        run_variants(sets, {}, "default", "cpu", FinetuneConfig(epochs=1, ft_batch_size=4),
                     tmp_path / "full", progress=False)
    assert full["model load"].model_loads == 2                   # a fresh copy per run


@pytest.mark.slow
def test_the_loss_reads_float32_logits_from_bf16_weights(default_model):
    """With bf16 weights (as LoRA loads them on CUDA) the output layer still computes float32
    logits, and the loss equals the float32 model's to bf16's precision."""
    net, tok = default_model
    data = encode(tok, ["What is the capital of Kenya?"], ["Nairobi"])
    ids, mask, labels = collate(data, tok.pad_token_id)
    seen = []
    original = torch.nn.functional.cross_entropy

    def spy(logits, target, *a, **k):
        seen.append(logits.dtype)
        return original(logits, target, *a, **k)
    half = load_model("default", "cpu", "fp32")[0].to(torch.bfloat16)
    torch.nn.functional.cross_entropy = spy
    try:
        with torch.no_grad():
            low = answer_loss(half, ids, mask, labels)
            high = answer_loss(net, ids, mask, labels)
    finally:
        torch.nn.functional.cross_entropy = original
    assert seen == [torch.float32, torch.float32]
    assert low.item() == pytest.approx(high.item(), rel=0.05)

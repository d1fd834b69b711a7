"""The `paper` profile's code path on a CPU: `knowshift run --profile paper` from the command
line, with a stand-in for its model (the embedded model with a BOS-adding tokenizer, as
Mistral's) and for its data (an EntityQuestions-format folder), both given as paths relative to
the directory the command runs in; reduced sizes and this host's precision; LoRA, the paper's
five mixes, one seed (bootstrap intervals), through the book."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from paper_standin import build_model, write_entityquestions

from knowshift.core.layout import RunFolder
from knowshift.study.facts import load_facts

pytestmark = pytest.mark.slow     # every test here loads the model, runs a profile or drives Chromium

# in-distribution relations of the paper that the built-in fact set has, and one it treats as
# out-of-distribution (none of the paper's 7 OOD relations is in the built-in set)
RELATIONS = ["P17", "P36", "P131", "P30"]
REDUCED = {"relations": f"[{', '.join(RELATIONS)}]", "precision": "auto", "device": "cpu",
           "n_train": 32, "n_dev": 6, "n_test": 9, "n_ood": 4, "n_exemplar_sets": 2,
           "n_samples": 2, "max_new_tokens": 8, "batch_size": 32, "d_size": 8, "pure_size": 4,
           "pure_categories": "[HighlyKnown, Unknown, Natural]", "epochs": 3,
           "learning_rate": 0.001,
           "ft_batch_size": 4, "lora_r": 8, "eval_batch_size": 32, "audit_size": 8}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("paper-standin")
    build_model(work / "standin-model")
    write_entityquestions(load_facts("offline").sort_values("id"), work / "eq", RELATIONS, 60)
    command = [str(Path(sys.executable).with_name("knowshift")), "run", "--profile", "paper",
               "-p", "model=standin-model", "-p", "facts=eq"]
    for name, value in REDUCED.items():
        command += ["-p", f"{name}={value}"]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=1800,
                          env=os.environ | {"PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return work, RunFolder(work / "runs" / "paper"), done


def test_the_paper_profile_runs_every_stage_from_relative_paths(paper_run):
    work, run, done = paper_run
    assert f"results in {run.root}" in done.stdout
    stamp = json.loads(run.stamp("facts").read_text())
    assert stamp["params"]["facts"] == str(work / "eq")            # resolved before the stages
    assert json.loads(run.stamp("slick").read_text())["params"]["model"] == str(
        work / "standin-model")
    table = run.read("slick")
    assert set(table["relation"]) == set(RELATIONS)
    assert set(table.loc[table["ood"], "relation"]) == {"P30"}
    assert table["category"].notna().all() and table["known"].any() and not table["known"].all()


def test_the_paper_profile_trains_lora_on_the_five_mixes_with_one_seed(paper_run):
    _, run, _ = paper_run
    checkpoints = run.read("checkpoints")
    assert {"mix_0%", "mix_25%", "mix_50%", "mix_75%", "mix_100%"} <= set(checkpoints["variant"])
    assert set(checkpoints["seed"]) == {0}
    sets = run.read("sets")
    assert sets.groupby("variant").size()["mix_50%"] == 8
    assert (sets.loc[sets["variant"] == "mix_100%", "known"] == False).all()  # noqa: E712


def test_its_book_has_bootstrap_intervals_and_no_machine_path(paper_run):
    work, run, _ = paper_run
    html = run.book_index().parent
    pages = {p.relative_to(html).as_posix(): p.read_text() for p in html.rglob("*.html")}
    assert "results.html" in pages and "notebooks/08_audit.html" in pages
    assert not [name for name, text in pages.items() if str(work) in text]
    assert ' >eq</td>' in pages["notebooks/01_facts.html"]             # as typed
    assert ' >standin-model</td>' in pages["notebooks/02_slick.html"]
    # one seed: every interval is a bootstrap over the test questions
    by_category = run.read("accuracy_by_category")
    assert (by_category["seeds"] == 1).all()
    assert (by_category["low"] <= by_category["accuracy"]).all()
    assert (by_category["accuracy"] <= by_category["high"]).all()
    assert run.read("coefficients")["coef"].notna().all()


def test_every_path_encodes_with_the_tokenizers_bos(paper_run):
    """The stand-in's tokenizer adds a BOS token and the embedded one does not: each path that
    feeds the model starts with exactly the tokenizer's own leading ids."""
    from transformers import AutoTokenizer

    from knowshift.core.schema import format_exemplars, format_question
    from knowshift.engine.encoding import leading_specials
    from knowshift.engine.generation import encode_groups
    from knowshift.engine.models import resolve_model
    from knowshift.study import finetune

    work, _, _ = paper_run
    standin = AutoTokenizer.from_pretrained(work / "standin-model")
    embedded = AutoTokenizer.from_pretrained(resolve_model("default")[0])
    assert leading_specials(standin) == [standin.bos_token_id] and leading_specials(embedded) == []
    prompt = format_question("What is the capital of Kenya?")
    exemplars = format_exemplars(["What is the capital of Peru?"], ["Lima"])
    for tok in (standin, embedded):
        [(k_head, [k_rest]), (e_head, [e_rest])] = encode_groups(
            tok, [(exemplars, [prompt]), ("", [prompt])])
        [(ids, n)] = finetune.encode(tok, ["What is the capital of Kenya?"], ["Nairobi"])
        assert k_head + k_rest == tok(exemplars + prompt).input_ids
        assert e_head + e_rest == ids[:n] == tok(prompt).input_ids

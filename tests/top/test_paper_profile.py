"""The `paper` profile's code path on a CPU, as `make gpu-smoke` runs it on a GPU: `knowshift run
--profile paper` from the command line with a random Mistral-shaped model built on the spot (its
tokenizer adds a BOS token, as Mistral's does) and an EntityQuestions-format folder, both given
as paths relative to the folder the command runs in; reduced sizes; LoRA, the paper's five mixes,
one seed (bootstrap intervals), through the book."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from knowshift.core.layout import RunFolder
from knowshift.gpusmoke import RELATIONS

pytestmark = pytest.mark.slow     # every test here loads the model, runs a profile or drives Chromium


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu-smoke")
    done = subprocess.run(["make", "-s", "gpu-smoke", f"GPU_PYTHON={sys.executable}",
                           f"GPU_SMOKE_ARGS=--device cpu --folder {work}"],
                          cwd=Path(__file__).parents[2], capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, RunFolder(work / "runs" / "paper"), done


def test_the_paper_profile_runs_every_stage_from_relative_paths(paper_run):
    work, run, done = paper_run
    assert f"results in {run.root}" in done.stdout
    report = json.loads((work / "gpu-smoke.json").read_text())
    assert report["device"] == "cpu" and report["taught"] >= 8
    stamp = json.loads(run.stamp("facts").read_text())
    assert stamp["params"]["facts"] == str(work / "eq")            # resolved before the stages
    assert json.loads(run.stamp("slick").read_text())["params"]["model"] == str(work / "model")
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
    assert ' >model</td>' in pages["notebooks/02_slick.html"]
    # one seed: every interval is a bootstrap over the test questions
    by_category = run.read("accuracy_by_category")
    assert (by_category["seeds"] == 1).all()
    assert (by_category["low"] <= by_category["accuracy"]).all()
    assert (by_category["accuracy"] <= by_category["high"]).all()
    assert run.read("coefficients")["coef"].notna().all()


def test_every_path_encodes_with_the_tokenizers_bos(paper_run):
    """The smoke model's tokenizer adds a BOS token and the embedded one does not: each path that
    feeds the model starts with exactly the tokenizer's own leading ids."""
    from transformers import AutoTokenizer

    from knowshift.core.schema import format_exemplars, format_question
    from knowshift.engine.encoding import leading_specials
    from knowshift.engine.generation import encode_groups
    from knowshift.engine.models import resolve_model
    from knowshift.study import finetune

    work, _, _ = paper_run
    standin = AutoTokenizer.from_pretrained(work / "model")
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

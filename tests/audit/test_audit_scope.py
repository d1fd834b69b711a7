"""The audit judges only what SliCK can judge: questions for a short fact. The check is
measured on hand-labelled rows (tests/data/applicability, written before its rules, and
applicability_heldout, written apart from both), and audits of conversational, mixed and tiny
files say what they judged and advise only from it."""

import json

import pandas as pd
import pytest
from conftest import DATA

from knowshift import cli
from knowshift.audit import judge as audit
from knowshift.audit import rows as audit_data
from knowshift.audit import scope as audit_scope
from knowshift.audit.rows import Budget

REPO = DATA.parent.parent

TINY = ["--exemplar-sets", "2", "--samples", "2", "--k-shot", "2", "--study", "paper"]
CHAT = [("I lost my book today.", "You can read everything on ebooks these days!"),
        ("Good morning!", "Good morning! How can I help?"),
        ("What should I cook tonight?", "A simple pasta with garlic."),
        ("Write a two-word motto.", "Keep going."),
        ("Thanks a lot!", "You're welcome!"),
        ("Is jazz better than rock?", "Both have their charms."),
        ("Can you help me with something?", "Sure!")]
FACTS = [("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
         ("What is the capital of Italy?", "Rome"), ("What is the capital of Spain?", "Madrid"),
         ("What is the capital of Germany?", "Berlin"), ("What is the capital of Peru?", "Lima")]


def _chat(path, pairs):
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
        for q, a in pairs))
    return path


@pytest.mark.parametrize("folder", ["applicability", "applicability_heldout"])
def test_the_check_on_hand_labelled_rows(folder):
    rows = audit_data.check_on_labels(DATA / folder)
    kinds = rows.groupby("kind").size()
    assert len(kinds) == 6 and kinds.min() >= (20 if folder == "applicability" else 10)
    judged, other = rows[rows["judged"]], rows[~rows["factual"]]
    assert judged["factual"].mean() >= 0.9                   # precision of what it judges
    assert (~other["judged"]).mean() >= 0.9                  # recall of the non-factual rows
    assert rows.loc[rows["factual"], "judged"].mean() >= 0.8  # and it still judges the facts
    assert set(rows["reason"].dropna()) - set(audit_scope.REASONS) <= {
        r for r in rows["reason"].dropna() if r.startswith("answer longer than")}


def test_each_rule_says_why():
    cases = {("Hi there", "Hello!"): audit_scope.CONVERSATION,
             ("What's your favourite film?", "Alien"): audit_scope.ADVICE,
             ("Where are you from?", "Nowhere"): audit_scope.PERSONAL,
             ("Write a haiku about rain", "Rain falls"): audit_scope.CREATIVE,
             ("Translate 'cat' into French.", "chat"): audit_scope.TASK,
             ("What is 17 times 23?", "391"): audit_scope.TASK,
             ("When was he born?", "1642"): audit_scope.FOLLOW_UP,
             ("What about Italy?", "Rome"): audit_scope.FOLLOW_UP,
             ("Why is the sky blue?", "Rayleigh scattering"): audit_scope.EXPLANATION,
             ("Who wrote Hamlet?", "I think it was Marlowe!"): audit_scope.TO_USER,
             ("Who wrote Hamlet?", "William\nShakespeare"): audit_scope.LINES,
             ("Какая столица России?", "Москва"): audit_scope.LANGUAGE}
    for (question, answer), reason in cases.items():
        assert audit_scope.why_not(question, answer) == reason, question
    for question in ("Who directed the film Kill Your Darlings?", "btw who painted the mona lisa",
                     "I'm bored. Who won the 2018 World Cup?", "Name the capital of Peru.",
                     "And in which year did World War I end?", "What genre is the film I Know "
                     "Who Killed Me?", "Which club plays its home games at Anfield?"):
        assert audit_scope.why_not(question, "An answer") is None, question


def test_the_bundled_example_is_judged_whole_and_the_built_in_facts_almost_all():
    examples = audit_data.read_examples(REPO / "examples" / "finetune_qa.jsonl")
    assert len(examples.table) == 48 and examples.skipped.empty
    everything = audit_data.read_examples(REPO / "examples" / "finetune_qa.jsonl",
                                          budget=Budget(judge_all=True))
    assert everything.table["question"].tolist() == examples.table["question"].tolist()


def test_a_file_with_nothing_to_judge_gets_a_report_and_no_advice(tmp_path, capsys):
    data = _chat(tmp_path / "chat.jsonl", CHAT)
    out = tmp_path / "out"
    assert cli.main(["audit", str(data), *TINY, "--out", str(out)]) == audit.EXIT_OK
    first = capsys.readouterr().out.splitlines()[0]
    assert "0 of 7 examples judged (0%), 7 skipped: not a factual question" in first
    report = json.loads((out / "audit.json").read_text())
    assert report["recommendation"]["action"] == "none" and report["expected_effect"] is None
    assert not report["can_judge"] and set(report["files"]) == {"examples", "skipped", "json",
                                                               "report"}
    html = (out / "report.html").read_text()
    assert "No recommendation" in html and "The audit cannot judge this file" in html
    # under a gate, a file it cannot judge does not pass
    assert cli.main(["audit", str(data), *TINY, "--out", str(out), "--fail-above", "0.5"]
                    ) == audit.EXIT_GATE
    assert "the audit cannot judge this file" in capsys.readouterr().err


@pytest.mark.slow
def test_a_mostly_conversational_file_is_not_judged_and_nothing_is_rewritten(tmp_path, capsys):
    # Before the check, this file was audited whole: every friendly reply came out Unknown and
    # the advice was to relabel them all "I don't know".
    data = _chat(tmp_path / "chat.jsonl", CHAT + FACTS[:2])
    out = tmp_path / "out"
    assert cli.main(["audit", str(data), *TINY, "--out", str(out)]) == audit.EXIT_OK
    printed = capsys.readouterr().out
    assert "2 of 9 examples judged (22%), 7 skipped" in printed.splitlines()[0]
    assert "recommendation: none: The audit cannot judge this file" in printed
    report = json.loads((out / "audit.json").read_text())
    assert report["n_examples"] == 2 and report["recommendation"]["action"] == "none"
    assert not (out / "idk.jsonl").exists() and not (out / "filtered.jsonl").exists()
    skipped = pd.read_parquet(out / "skipped.parquet")
    assert len(skipped) == 7 and skipped["reason"].str.startswith("not a factual").all()


@pytest.mark.slow
def test_a_mixed_file_judges_its_factual_rows_and_changes_only_them(tmp_path, capsys):
    data = _chat(tmp_path / "mixed.jsonl", [p for pair in zip(FACTS, CHAT) for p in pair])
    out = tmp_path / "out"
    assert cli.main(["audit", str(data), *TINY, "--out", str(out)]) == audit.EXIT_OK
    printed = capsys.readouterr().out
    assert "6 of 12 examples judged (50%), 6 skipped" in printed.splitlines()[0]
    report = json.loads((out / "audit.json").read_text())
    assert report["can_judge"] and report["n_examples"] == 6
    assert "(50% of the file; the rest is neither judged nor changed)" in \
        report["recommendation"]["reason"]
    rows = [json.loads(line) for line in (out / "idk.jsonl").read_text().splitlines()]
    originals = [json.loads(line) for line in data.read_text().splitlines()]
    for row, original in zip(rows, originals, strict=True):
        if original["messages"][0]["content"] not in dict(FACTS):
            assert row == original                  # a row not judged is never rewritten
    kept = [json.loads(line) for line in (out / "filtered.jsonl").read_text().splitlines()]
    assert [r for r in originals if r["messages"][0]["content"] not in dict(FACTS)] == \
        [r for r in kept if r["messages"][0]["content"] not in dict(FACTS)]


@pytest.mark.slow
def test_a_five_row_chat_file_audits_with_default_flags_and_shows_its_skips(tmp_path, capsys):
    data = _chat(tmp_path / "five.jsonl", FACTS[:4] + CHAT[:1])
    out = tmp_path / "out"
    assert cli.main(["audit", str(data), "--study", "paper", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].endswith("4 of 5 examples judged (80%), 1 skipped: not a factual "
                               "question: about the assistant or the user (1)")
    assert printed[1] == ("[knowshift] exemplars: 2-shot, whole file, other half (not 4-shot: "
                          "the file has 4 judged examples (each half's exemplars are the other "
                          "half))")
    report = json.loads((out / "audit.json").read_text())
    assert report["slick"]["k_shot"] == 2 and report["n_examples"] == 4
    html = (out / "report.html").read_text()
    assert "I lost my book today." in html and "not 4-shot" in html

"""The audit on the files people really have: chat, ShareGPT, Alpaca and Hugging Face datasets
(hand-written in each format's published shape in tests/data/audit), the accounting of what
SliCK cannot judge, output files in the input's own format, sampling with intervals, the gate's
exit codes, and a report that stays safe for hostile text in a real headless Chromium."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DATA

from knowshift import cli
from knowshift.audit import containers as audit_files
from knowshift.audit import effect as audit_effect
from knowshift.audit import judge as audit
from knowshift.audit import report as audit_report
from knowshift.audit import rows as audit_data
from knowshift.audit import scope as audit_scope
from knowshift.audit.rows import Budget
from knowshift.core.errors import DataFileError, ParameterError
from knowshift.core.layout import audit_file
from knowshift.core.schema import CATEGORIES, IDK_ANSWER
from knowshift.study.slick import SlickConfig

FILES = DATA / "audit"
TINY = ["--exemplar-sets", "2", "--samples", "2", "--k-shot", "2", "--study", "paper"]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("name, shape, questions, skipped", [
    ("chat.jsonl", "chat",
     ["What is the capital of France?", "What is the capital of Japan?",
      "And the capital of Italy?", "What is the capital of Germany?",
      "What is the capital of Spain?", "What is the capital of Kenya?",
      "Where was Rube Foster born?", "Where was Cap Anson born?",
      "Where was Deacon White born?"],
     [(9, 1, "answer longer than 10 words (120 characters)"), (10, 1, "tool call"), (10, 2, "tool call"),
      (11, 0, "no user→assistant pair"), (12, 1, "not trained on (weight 0)"),
      (13, 1, "non-text content")]),
    ("sharegpt.json", "sharegpt",
     ["What is the capital of France?", "What is the capital of Japan?",
      "What is the capital of Egypt?", "Where was Cap Anson born?"],
     [(4, 1, "answer longer than 10 words (120 characters)"), (5, 1, "tool call"), (5, 2, "tool call"),
      (6, 1, "no user turn before this assistant turn")]),
    ("alpaca.json", "alpaca",
     ["What is the capital of France?", "Name the capital of the country below.\nJapan",
      "Where was Cap Anson born?"],
     [(4, 1, "answer longer than 10 words (120 characters)")]),
    ("qa.csv", "qa", ["What is the capital of Peru?", "Where is Toledo?"],
     [(4, 1, "answer longer than 10 words (120 characters)")]),
])
def test_each_published_shape_gives_its_examples_and_counts_its_skips(name, shape, questions,
                                                                      skipped):
    examples = audit_data.read_examples(FILES / name)
    assert examples.shape == shape
    assert examples.table["question"].tolist() == questions
    assert [tuple(r) for r in examples.skipped[["line", "turn", "reason"]].to_numpy()] == skipped
    share = examples.auditable()
    assert share["examples"] == len(questions) and share["skipped"] == len(skipped)
    assert share["share"] == pytest.approx(len(questions) / (len(questions) + len(skipped)))
    assert sum(share["skipped_by_reason"].values()) == len(skipped)


def test_conversations_keep_turns_context_and_fields(tmp_path):
    chat = audit_data.read_examples(FILES / "chat.jsonl").table.set_index("question")
    japan, italy = chat.loc["What is the capital of Japan?"], chat.loc["And the capital of Italy?"]
    assert (japan["line"], japan["turn"], italy["line"], italy["turn"]) == (2, 1, 2, 2)
    assert italy["answers"] == ["Rome"] and italy["slot"] == 4
    assert italy["context"] == "You answer geography questions in a few words."
    assert chat.loc["What is the capital of Spain?", "answer"] == "Madrid"   # content parts
    assert chat.loc["Where was Cap Anson born?", "source"] == "baseball"     # a row's field
    sharegpt = audit_data.read_examples(FILES / "sharegpt.json").table
    assert sharegpt["id"].tolist() == ["sg-1", "sg-2", "sg-2", "sg-3"]
    mixed = tmp_path / "mixed.jsonl"       # a field that is a number in one row, text in another
    mixed.write_text('{"question": "Q1?", "answer": "A", "id": 7}\n'
                     '{"question": "Q2?", "answer": "B", "id": "x-8"}\n')
    table = audit_data.read_examples(mixed, budget=Budget(judge_all=True)).table  # "Q1?": no fact
    assert table["id"].tolist() == ["7", "x-8"]
    table.to_parquet(tmp_path / "mixed.parquet")           # examples.parquet can hold it
    assert sharegpt["context"].tolist()[0] == "Answer in a few words."


def test_budget_sets_what_counts_as_a_short_answer():
    loose = audit_data.read_examples(FILES / "alpaca.json", budget=Budget(max_answer_words=40))
    # the long answer, within 40 words, now meets the applicability check: it is advice
    assert len(loose.table) == 3 and loose.skipped["reason"].tolist() == [audit_scope.ADVICE]
    loosest = audit_data.read_examples(FILES / "alpaca.json",
                                       budget=Budget(max_answer_words=40, judge_all=True))
    assert len(loosest.table) == 4 and loosest.skipped.empty
    strict = audit_data.read_examples(FILES / "chat.jsonl", budget=Budget(max_prompt_words=5))
    assert "prompt longer than 5 words (60 characters)" in strict.auditable()["skipped_by_reason"]
    with pytest.raises(ParameterError, match="max_answer_words=0"):
        Budget(max_answer_words=0)


def test_a_hugging_face_dataset_folder_reads_like_its_rows(tmp_path):
    import datasets

    # a dataset holds one schema: the rows whose messages are all {role, content: text}
    rows = [_rows(FILES / "chat.jsonl")[i] for i in (0, 1, 2, 4, 5, 6, 7, 8, 10)]
    for row in rows:
        row["messages"] = [{"role": m["role"], "content": m["content"]}
                           for m in row["messages"]]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    examples = audit_data.read_examples(tmp_path / "ds")
    assert (examples.data.container, examples.shape) == ("hf", "chat")
    assert len(examples.table) == 8 and examples.table["line"].tolist()[:3] == [1, 2, 2]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                          "test": datasets.Dataset.from_list(rows[3:5])}).save_to_disk(
        str(tmp_path / "dd"))
    assert len(audit_data.read_examples(tmp_path / "dd").table) == 4     # the train split
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows[:3])}).save_to_disk(
        str(tmp_path / "nt"))
    with pytest.raises(DataFileError, match=r"without a 'train' split \(splits: \['validation'\]"):
        audit_data.read_examples(tmp_path / "nt")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataFileError, match="not a Hugging Face dataset saved with save_to_disk"):
        audit_data.read_examples(tmp_path / "plain")


def test_format_is_detected_or_forced(tmp_path):
    with pytest.raises(DataFileError) as err:
        audit_data.read_examples(FILES / "chat.jsonl", shape="alpaca")
    assert "13 bad row(s) for the alpaca format" in str(err.value)
    assert "line 1: 'instruction' must be text; 'output' must be text" in str(err.value)
    with pytest.raises(DataFileError, match="unknown format 'openai'"):
        audit_data.read_examples(FILES / "chat.jsonl", shape="openai")
    path = tmp_path / "odd.jsonl"
    path.write_text('{"prompt": "Q?", "completion": "A"}\n')
    with pytest.raises(DataFileError, match=r"cannot tell the format .* \['completion', "
                                            r"'prompt'\].*or pass --format"):
        audit_data.read_examples(path)


def test_every_malformed_row_is_listed(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}]},
        {"messages": "Q? A"},
        {"messages": [{"role": "narrator", "content": "x"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": ["user: Q?"]}]) + "\n")
    with pytest.raises(DataFileError) as err:
        audit_data.read_examples(path)
    message = str(err.value)
    for expected in ("4 bad row(s) for the chat format", "line 2: 'messages' must be a list",
                     "line 3: message 1 has an unknown role 'narrator'",
                     "line 4: message content must be text or a list of parts, got int",
                     "line 5: message 1 is not an object with a 'role'"):
        assert expected in message
    sharegpt = tmp_path / "bad.json"
    sharegpt.write_text(json.dumps([{"conversations": [{"from": "human"}]}, [1, 2]]))
    with pytest.raises(DataFileError) as err:
        audit_data.read_examples(sharegpt)
    assert "item 2: expected a JSON object, got list" in str(err.value)
    assert "item 1: turn 1: 'value' must be text" in str(err.value)


def test_a_file_that_cannot_be_read_gets_one_clear_error(tmp_path):
    cases = {
        "latin1.jsonl": ('{"question": "Qu\xe9?", "answer": "A"}\n'.encode("latin-1"),
                         r"line 1 is not UTF-8 text \(byte 0xe9 at column 17\)"),
        "latin1.csv": ("question,answer\nQu\xe9?,A\n".encode("latin-1"),
                       r"line 2 is not UTF-8 text \(byte 0xe9 at column 3\)"),
        "empty.jsonl": (b"", "empty.jsonl is empty: it holds no examples"),
        "blank.jsonl": (b"\n  \n", "blank.jsonl holds no examples"),
        "empty.csv": (b"\n", "empty.csv holds no examples"),
        "object.json": (b'{"question": "Q?", "answer": "A"}',
                        "expected a JSON array of examples, got a dict"),
        "broken.json": (b'[{"question": "Q?",', "not valid JSON at line 1"),
        "huge.jsonl": (b'{"question": "' + b"x" * (audit_files.MAX_LINE_BYTES + 10) + b'"}\n',
                       "line 1 is longer than 8 MiB"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataFileError, match=message):
            audit_data.read_examples(tmp_path / name)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"question": "Who wrote Q?", "answer": "A"}\n')
    assert audit_data.read_examples(bom).table["question"].tolist() == ["Who wrote Q?"]


# ---------------------------------------------------------------------------------- output files
def _as_parquet(tmp_path):
    rows = [_rows(FILES / "chat.jsonl")[i] for i in (0, 1, 2, 4, 5, 6, 7, 8, 10)]
    for row in rows:
        row["messages"] = [{"role": m["role"], "content": m["content"]}
                           for m in row["messages"]]
    path = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("name", ["chat.jsonl", "sharegpt.json", "alpaca.json", "qa.csv",
                                  "parquet", "hf"])
def test_filtered_and_relabelled_files_keep_the_format_and_every_field(name, tmp_path):
    if name == "parquet":
        source = _as_parquet(tmp_path)
    elif name == "hf":
        import datasets
        datasets.Dataset.from_list(_rows(FILES / "chat.jsonl")[:3]).save_to_disk(  # one schema
            str(tmp_path / "ds"))
        source = tmp_path / "ds"
    else:
        source = FILES / name
    examples = audit_data.read_examples(source, budget=Budget(judge_all=True))
    unknown = pd.Series(np.arange(len(examples.table)) % 2 == 1)     # every other example
    out = {}
    for stem, records in (("idk", audit_data.relabelled(examples, unknown)),
                          ("filtered", audit_data.filtered(examples, unknown))):
        path = audit_file(tmp_path / "out", stem, examples.data.suffix)
        audit_files.write(examples.data, records, path)
        # read back judging all: an "I don't know" answer is no fact, so the check skips it
        out[stem] = audit_data.read_examples(path, budget=Budget(judge_all=True))
    original = examples.data.records
    idk = out["idk"]
    assert idk.data.container == examples.data.container and idk.shape == examples.shape
    assert len(idk.data.records) == len(original)
    assert [sorted(r) for r in idk.data.records] == [sorted(r) for r in original]
    relabelled = idk.table.set_index(["line", "turn"])["answer"]
    for (_, ex), marked in zip(examples.table.iterrows(), unknown):
        expected = IDK_ANSWER if marked else ex["answer"]
        assert relabelled[(ex["line"], ex["turn"])] == expected
    # the skipped turns and every other field are untouched
    assert idk.skipped[["line", "turn", "reason"]].equals(
        examples.skipped[["line", "turn", "reason"]])
    dropped = set(examples.table.loc[unknown.to_numpy(), "record"])
    assert out["filtered"].data.records == [r for i, r in enumerate(original) if i not in dropped]


# ---------------------------------------------------------------------------------- sampling
def _population(n=2000, unknown=0.35, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
    category = np.where(rng.random(n) < unknown, "Unknown",
                        rng.choice(CATEGORIES[:3], size=n))
    return pd.DataFrame({"line": np.arange(1, n + 1), "turn": 1, "group": group,
                         "category": pd.Categorical(category, categories=CATEGORIES)})


def test_a_stratified_sample_is_proportional_and_seeded():
    table = _population()
    sample = audit.draw_sample(table, 100, ["group"], seed=3)
    counts = sample["group"].value_counts()
    expected = table["group"].value_counts() * 100 / len(table)
    assert len(sample) == 100 and (abs(counts - expected) < 1).all()
    assert sample.index.equals(audit.draw_sample(table, 100, ["group"], seed=3).index)
    assert not sample.index.equals(audit.draw_sample(table, 100, ["group"], seed=4).index)
    assert len(audit.draw_sample(table, 5000, [], seed=3)) == len(table)


def test_sample_intervals_cover_the_file_share():
    table = _population()
    truth = float((table["category"] == "Unknown").mean())
    fit = audit_effect.study_fit("paper")
    covered = effect_covered = 0
    for seed in range(200):
        mix = audit._mix(audit.draw_sample(table, 150, ["group"], seed), with_interval=True)
        low, high = mix["Unknown"]["low"], mix["Unknown"]["high"]
        covered += low <= truth <= high
        effect = audit_effect.expected_effect(fit, 1 - mix["Unknown"]["share"],
                                              mix["Unknown"]["share"], (low, high))
        lo, hi = effect["unknown_effect_ci"]
        effect_covered += lo <= fit["b_unk"] * truth <= hi
    assert 0.90 <= covered / 200 <= 1.0 and effect_covered == covered
    full = audit._mix(table, with_interval=False)
    assert full["Unknown"]["share"] == pytest.approx(truth) and full["Unknown"]["low"] is None


def test_the_gate_reads_the_share_or_its_lower_bound():
    judged = {"auditable": {"examples": 150, "share": 0.6}, "can_judge": True}
    full = {"mix": {"Unknown": {"share": 0.32, "low": None, "high": None}}, "sample": None,
            **judged}
    assert audit.gate(full, 0.3)[0] is False and audit.gate(full, 0.35)[0] is True
    sampled = {"mix": {"Unknown": {"share": 0.32, "low": 0.25, "high": 0.40}},
               "sample": {"n": 150}, **judged}
    passed, why = audit.gate(sampled, 0.3)
    assert passed and "lower 95 % bound of the Unknown share 25.0% of the judged examples " \
        "(60% of the file) is within" in why
    # a file the audit cannot judge never passes, whatever its Unknown share
    unjudged = full | {"auditable": {"examples": 2, "share": 0.1}, "can_judge": False}
    assert audit.gate(unjudged, 1.0) == (False, "the audit cannot judge this file (2 examples "
                                               "judged, 10% of it), so it cannot pass "
                                               "--fail-above")
    with pytest.raises(ParameterError, match="between 0 and 1"):
        audit.gate(full, 30)


# ---------------------------------------------------------------------------------- real audits
@pytest.mark.slow
def test_gate_exit_codes_on_a_real_chat_audit(tmp_path, capsys, monkeypatch):
    out = ["--out", str(tmp_path / "chat")]
    code = cli.main(["audit", str(FILES / "chat.jsonl"), *TINY, *out, "--fail-above", "1"])
    report = json.loads((tmp_path / "chat" / "audit.json").read_text())
    assert code == audit.EXIT_OK and report["format"] == {"container": "jsonl", "shape": "chat"}
    assert report["auditable"]["examples"] == 9 and report["auditable"]["skipped"] == 6
    first = capsys.readouterr().out.splitlines()[0]      # skips first, beside the judged share
    assert "9 of 15 examples judged (60%), 6 skipped: tool call (2); " in first
    skipped = pd.read_parquet(tmp_path / "chat" / "skipped.parquet")
    assert len(skipped) == 6 and set(skipped.columns) == {"line", "turn", "reason", "excerpt"}
    unknown = report["mix"]["Unknown"]["share"]
    assert 0 < unknown < 1        # the capitals are known, the ballplayers' birthplaces not
    # the same audit gated just below its Unknown share fails with code 3 (SliCK cached)
    code = cli.main(["audit", str(FILES / "chat.jsonl"), *TINY, *out,
                     "--fail-above", f"{unknown - 0.01:.3f}"])
    assert code == audit.EXIT_GATE and "gate: FAILED: Unknown share" in capsys.readouterr().err
    assert cli.main(["audit", str(FILES / "chat.jsonl"), *TINY, *out,
                     "--fail-above", "30"]) == audit.EXIT_ERROR
    assert "fail_above=30.0: give a share between 0 and 1" in capsys.readouterr().err
    assert cli.main(["audit", str(FILES / "missing.jsonl"), *TINY]) == audit.EXIT_ERROR

    html = (tmp_path / "chat" / "report.html").read_text()
    assert "context (system)" in html and "You answer geography questions in a few words." in html
    assert "(<b>60.0 %</b>), 6 skipped; most often:" in html
    assert "not trained on (weight 0): 1" in html

    # evidence per example: P_correct, answers, and the accepted answer they matched
    examples = pd.read_parquet(tmp_path / "chat" / "examples.parquet")
    # a --group-by column with too many values for a figure keeps its table, not a figure
    many = examples.assign(row_id=[f"r{i}" for i in range(len(examples))])
    html = audit_report.render_html(report, many, skipped, ["source", "row_id"])
    assert html.count("data:image/png;base64,") == 3            # overall, source, row_id
    monkeypatch.setattr(audit_report, "MAX_FIGURE_GROUPS", len(examples) - 1)
    html = audit_report.render_html(report, many, skipped, ["source", "row_id"])
    assert html.count("data:image/png;base64,") == 2 and "r8" in html
    for _, row in examples.iterrows():
        assert len(row["greedy_predictions"]) == 2
        assert pd.notna(row["matched_answer"]) == (row["category"] != "Unknown")
        if row["category"] in ("WeaklyKnown", "Unknown"):
            assert len(row["sample_predictions"]) == 4
        else:
            assert row["matched_answer"] in list(row["answers"])


@pytest.mark.slow
def test_a_sampled_audit_reports_intervals_and_gates_on_the_lower_bound(tmp_path, capsys):
    out = tmp_path / "sample"
    code = cli.main(["audit", str(FILES / "chat.jsonl"), *TINY, "--out", str(out),
                     "--sample", "4", "--group-by", "source", "--fail-above", "0"])
    report = json.loads((out / "audit.json").read_text())
    assert report["sample"] == {"n": 4, "of": 9, "seed": 0, "stratified_by": ["source"],
                                "interval": "Wilson 95 %"}
    assert report["n_examples"] == 4
    assert report["exemplars"] == "2-shot, whole file, examples not sampled"
    for c, v in report["mix"].items():
        assert v["low"] <= v["share"] <= v["high"]
    lo, hi = report["expected_effect"]["unknown_effect_ci"]
    assert lo <= report["expected_effect"]["unknown_effect"] <= hi
    low = report["mix"]["Unknown"]["low"]
    assert code == (audit.EXIT_GATE if low > 0 else audit.EXIT_OK)
    assert "filtered" not in report["files"] and not list(out.glob("filtered*"))
    assert "audited a sample of 4 of 9 judged examples" in capsys.readouterr().out


@pytest.mark.slow
def test_the_report_is_safe_for_hostile_text_in_chromium(tmp_path):
    from selenium.webdriver.common.by import By

    from knowshift.book.check import open_browser

    data = tmp_path / "hostile.jsonl"
    shutil.copy(FILES / "hostile.jsonl", data)
    with data.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"question": "Why? " + "x" * 20000, "answer": "A" * 5000,
                            "topic": "long"}) + "\n")
        f.write(json.dumps({"question": " ".join(["word"] * 300), "answer": "many",
                            "topic": "long"}) + "\n")
        f.write(json.dumps({"question": "日本の首都は" * 60 + "？", "answer": "東京",
                            "topic": "長い"}, ensure_ascii=False) + "\n")
    out = tmp_path / "report"
    # --judge-all: this test is about showing hostile text as evidence, and the applicability
    # check would skip its Russian, Japanese and Arabic rows (it reads English) and a definition
    assert cli.main(["audit", str(data), *TINY, "--out", str(out), "--group-by", "topic",
                     "--judge-all"]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert report["auditable"]["skipped_by_reason"] == {
        "answer longer than 10 words (120 characters)": 1,
        "prompt longer than 128 words (1536 characters)": 1}
    html = (out / "report.html").read_text()
    assert "<script>window.pwned" not in html and "onerror=\"window" not in html

    driver = open_browser()
    try:
        driver.get((out / "report.html").as_uri())
        assert driver.execute_script("return typeof window.pwned") == "undefined"
        assert driver.title == "knowshift audit: hostile.jsonl"
        text = driver.find_element(By.ID, "evidence").text
        for shown in ("What is the capital of France? <script>window.pwned = 1</script>",
                      "</td><script>window.pwned = 3</script>", 'bold <img src=x onerror=',
                      "&lt;b&gt; &amp; &#x27;", "Какая столица России?", "東京",
                      "ما هي عاصمة مصر؟", '"the Big Apple" & \'the city that never sleeps\''):
            assert shown in text
        rows = driver.find_elements(By.CSS_SELECTOR, "#evidence tbody tr")
        assert len(rows) == 9 and not driver.find_elements(By.CSS_SELECTOR, "#evidence a")
        # the table's own script runs (the page's CSP allows it by hash) and filters
        box = driver.find_element(By.ID, "filter-text")
        box.send_keys("столица")
        assert driver.find_element(By.ID, "shown").text == "1"
        assert sum(r.is_displayed() for r in rows) == 1
        box.clear()
        box.send_keys(" ")       # clear() fires no input event; a space matches every row
        header = driver.find_element(By.XPATH, "//table[@id='evidence']//th[.//button[text()="
                                               "'P(greedy)']]")
        header.find_element(By.TAG_NAME, "button").click()
        assert header.get_attribute("aria-sort") == "ascending"
        values = [float(c.get_attribute("data-sort")) for c in driver.find_elements(
            By.CSS_SELECTOR, "#evidence tbody tr td:nth-child(7)")]
        assert values == sorted(values)
        # and if some text ever escaped, the page's policy still runs no other script
        injected = out / "injected.html"
        injected.write_text(html.replace("</body>", "<script>window.pwned = 5</script>"
                                         "<img src=x onerror=\"window.pwned = 6\"></body>"))
        driver.get(injected.as_uri())
        assert driver.execute_script("return typeof window.pwned") == "undefined"
        assert driver.find_element(By.ID, "shown").text == "9"
    finally:
        driver.quit()


@pytest.mark.slow
def test_an_interrupted_full_audit_redoes_only_its_unfinished_slice(tmp_path, default_model):
    examples = audit_data.read_examples(FILES / "chat.jsonl").table
    config = SlickConfig(n_exemplar_sets=2, k_shot=2, n_samples=2, batch_size=16)
    cache = tmp_path / "cache"
    first = audit.label(examples, *default_model, config, cache, progress=False, slice_size=2)
    slices = sorted(p for p in cache.glob("half*/slice*") if p.is_dir())
    assert len(slices) == 5            # halves of 5 and 4 examples, in slices of 2
    lost = slices[3]                   # as if the run had stopped while labelling it
    shutil.rmtree(lost)
    kept = {p: p.stat().st_mtime_ns for p in cache.rglob("set*.parquet")}
    again = audit.label(examples, *default_model, config, cache, progress=False, slice_size=2)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept          # finished work untouched
    assert any(lost.rglob("set*.parquet"))                           # the lost slice redone
    assert again["category"].tolist() == first["category"].tolist()
    assert again["id"].tolist() == audit.example_ids(examples)


@pytest.mark.slow
def test_a_repeated_question_is_never_its_own_exemplar(tmp_path, default_model):
    """Invented facts, each twice in the file: if a copy could be the other's exemplar, the
    model would read the answer off the prompt and call the fact Known."""
    invented = [("What is the code word of the Zorblax guild?", "Quibbleworth"),
                ("Which river flows through the town of Vemmerdal?", "Ostrakine"),
                ("Who founded the Plinthor institute?", "Adela Moravcik"),
                ("What is the capital of Drelmania?", "Skarvik")]
    real = [("What is the capital of France?", "Paris"), ("What is the capital of Japan?",
             "Tokyo"), ("What is the capital of Italy?", "Rome"),
            ("What is the capital of Germany?", "Berlin"), ("What is the capital of Spain?",
             "Madrid"), ("What is the capital of Egypt?", "Cairo")]
    path = tmp_path / "repeated.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                            for q, a in invented * 2 + real))
    examples = audit_data.read_examples(path).table
    config = SlickConfig(n_exemplar_sets=4, k_shot=2, n_samples=2, batch_size=16)
    labelled = audit.label(examples, *default_model, config, tmp_path / "cache", progress=False)
    made_up = labelled[labelled["question"].isin([q for q, _ in invented])]
    assert len(made_up) == 8 and (made_up["category"] == "Unknown").all()

"""`knowshift audit`: the schema is enforced row by row, a real audit runs SliCK with the default
model on a small real file, its files round-trip, and the recommendation follows the numbers."""

import json

import pandas as pd
import pytest

from knowshift import cli
from knowshift.audit import effect as audit_effect
from knowshift.audit import judge as audit
from knowshift.audit import rows as audit_data
from knowshift.core.errors import DataFileError, ParameterError
from knowshift.core.schema import CATEGORIES, IDK_ANSWER
from knowshift.study.slick import SlickConfig


def _jsonl(path, rows):
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------- schema
def test_every_bad_jsonl_row_is_reported_with_its_line(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [
        {"question": "What is the capital of Kenya?", "answer": "Nairobi"},
        "{not json\n",
        {"question": "", "answer": "x"},
        "\n",
        {"question": "Where was X born?", "answers": "Paris"},
        {"question": "Who directed Y?"},
        "[1, 2]\n",
        {"question": "Which country is Lyon located in?", "answers": ["France"]}])
    with pytest.raises(DataFileError) as err:
        audit_data.read_examples(path)
    message = str(err.value)
    assert "5 bad row(s)" in message
    for expected in ("line 2: not valid JSON", "line 3: empty or missing question",
                     "line 5: 'answers' must be a list", "line 6: empty or missing answer",
                     "line 7: expected a JSON object"):
        assert expected in message
    assert "line 1" not in message and "line 8" not in message


def test_csv_and_parquet_rows_and_columns(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("question,answers,topic\nWhat is the capital of Peru?,Lima,geo\n"
                   "Where is Toledo?,Ohio|OH,geo\n,x,geo\n")
    with pytest.raises(DataFileError, match="line 4: empty or missing question"):
        audit_data.read_examples(csv)
    csv.write_text("question,answers,topic\nWhat is the capital of Peru?,Lima,geo\n"
                   "Where is Toledo?,Ohio|OH,geo\n")
    table = audit_data.read_examples(csv).table
    assert table["answers"].tolist() == [["Lima"], ["Ohio", "OH"]]
    assert table["line"].tolist() == [2, 3] and table["topic"].tolist() == ["geo", "geo"]
    pd.DataFrame({"question": ["Q1?", "Q2?"], "answer": ["A", None]}).to_parquet(
        tmp_path / "d.parquet")
    with pytest.raises(DataFileError, match="row 2: empty or missing answer"):
        audit_data.read_examples(tmp_path / "d.parquet")
    (tmp_path / "noq.csv").write_text("prompt,answer\nx,y\n")
    with pytest.raises(DataFileError, match="cannot tell the format from the fields"):
        audit_data.read_examples(tmp_path / "noq.csv")
    (tmp_path / "d.txt").write_text("q")
    with pytest.raises(DataFileError, match="unknown format '.txt'"):
        audit_data.read_examples(tmp_path / "d.txt")
    with pytest.raises(DataFileError, match="does not exist"):
        audit_data.read_examples(tmp_path / "missing.jsonl")


def test_cli_reports_a_bad_file_as_one_error(tmp_path, capsys):
    path = _jsonl(tmp_path / "d.jsonl", [{"question": "Q?", "answer": ""}])
    assert cli.main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("knowshift: error: d.jsonl: 1 bad row(s)") and "line 1" in err


# ---------------------------------------------------------------------------------- recommendation
PAPER = audit_effect.study_fit("paper")


@pytest.mark.parametrize("known, unknown, action", [
    (0.4, 0.6, "relabel as IDK"),   # -5.0 points, filtering would keep 40 %
    (0.7, 0.3, "filter"),           # -2.5 points, 70 % kept
    (0.9, 0.1, "stop early"),       # -0.8 points: below a point
    (1.0, 0.0, "stop early")])
def test_recommendation_follows_the_paper_fit(known, unknown, action):
    effect = audit_effect.expected_effect(PAPER, known, unknown)
    assert effect["unknown_effect"] == pytest.approx(-8.3 * unknown)
    assert effect["predicted_accuracy"] == pytest.approx(36.9 + 7.3 * known - 8.3 * unknown)
    rec = audit_effect.recommend(effect)
    assert rec["action"] == action
    assert f"{unknown:.0%} of the examples are Unknown" in rec["reason"]


def test_an_uncertain_effect_only_asks_for_early_stopping():
    fit = dict(PAPER, b_unk=-6.0, b_unk_ci=[-14.0, 2.0])
    rec = audit_effect.recommend(audit_effect.expected_effect(fit, 0.5, 0.5))
    assert rec["action"] == "stop early" and "not clearly harmful" in rec["reason"]
    fit = dict(PAPER, b_unk=-6.0, b_unk_ci=[-10.0, -2.0])
    effect = audit_effect.expected_effect(fit, 0.5, 0.5)
    assert effect["unknown_effect_ci"] == [-5.0, -1.0]
    assert audit_effect.recommend(effect)["action"] == "filter"


@pytest.mark.slow
def test_study_fit_from_a_run_has_intervals(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    fit = audit_effect.study_fit(run_dir)
    lo, hi = fit["b_unk_ci"]
    assert lo <= fit["b_unk"] <= hi and repr(run_dir.resolve().name) in fit["source"]
    assert str(run_dir.resolve()) not in fit["source"]       # no machine path in the book
    with pytest.raises(ParameterError, match="not a finished knowshift run"):
        audit_effect.study_fit(tmp_path)


# ---------------------------------------------------------------------------------- a real audit
@pytest.fixture(scope="module")
def small_file(tmp_path_factory, offline_facts):
    """14 real held-out questions: capitals (the 135M model knows many) and birthplaces of
    baseball players (it knows almost none)."""
    test = offline_facts[offline_facts["split"] == "test"]
    capitals = test[test["relation"] == "P36"].nlargest(7, "popularity")
    players = test[test["relation"] == "P19"].head(7)
    rows = [{"question": q, "answers": list(a), "topic": t}
            for t, part in (("capitals", capitals), ("baseball", players))
            for q, a in zip(part["question"], part["answers"])]
    return _jsonl(tmp_path_factory.mktemp("audit") / "small.jsonl", rows)


@pytest.mark.slow
def test_real_audit_writes_a_report_and_files_that_round_trip(small_file, tmp_path):
    config = SlickConfig(n_exemplar_sets=2, k_shot=2, n_samples=2, batch_size=16)
    out = tmp_path / "out"
    report = audit.run(small_file, "default", "cpu", config, out, group_by=["topic"],
                       study="paper", progress=False)
    assert report["n_examples"] == 14
    assert sum(v["n"] for v in report["mix"].values()) == 14
    assert set(report["by_group"]["topic"]) == {"capitals", "baseball"}
    shares = {t: report["by_group"]["topic"][t] for t in ("capitals", "baseball")}
    known_capitals = 1 - shares["capitals"]["Unknown"]
    assert known_capitals > 1 - shares["baseball"]["Unknown"]

    examples = pd.read_parquet(out / "examples.parquet")
    assert set(examples["category"]) <= set(CATEGORIES) and len(examples) == 14
    unknown = examples[examples["category"] == "Unknown"]
    assert [r["line"] for r in report["most_unknown"]] == sorted(unknown["line"])[:20]
    assert json.loads((out / "audit.json").read_text())["mix"] == report["mix"]
    html = (out / "report.html").read_text()
    assert f"Recommendation: {report['recommendation']['action']}" in html
    assert html.count("data:image/png;base64,") == 2

    # the files keep the input's format and columns and read back with the same schema
    # (read back with judge_all: an "I don't know" answer is no fact, so the check skips it)
    every = audit_data.Budget(judge_all=True)
    filtered = audit_data.read_examples(out / "filtered.jsonl", budget=every).table
    idk = audit_data.read_examples(out / "idk.jsonl", budget=every).table
    assert list(json.loads((out / "idk.jsonl").read_text().splitlines()[0])) == [
        "question", "answers", "topic"]
    assert sorted(filtered["question"]) == sorted(examples.loc[examples["known"], "question"])
    relabelled = idk.set_index("question")["answers"]
    for _, row in examples.iterrows():
        expected = [IDK_ANSWER] if row["category"] == "Unknown" else list(row["answers"])
        assert relabelled[row["question"]] == expected

    # expected effect and recommendation are the functions of the measured mix
    effect = audit_effect.expected_effect(PAPER, float(examples["known"].mean()),
                                   1 - float(examples["known"].mean()))
    assert report["expected_effect"]["unknown_effect"] == pytest.approx(effect["unknown_effect"])
    assert report["recommendation"] == audit_effect.recommend(effect)

    # resumable: a second run reuses every cached SliCK chunk and gives the same labels
    chunks = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("set*.parquet")}
    assert chunks
    again = audit.run(small_file, "default", "cpu", config, out, group_by=["topic"],
                      study="paper", progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("set*.parquet")} == chunks
    assert again["mix"] == report["mix"]


def test_a_small_file_gets_fewer_shots_then_built_in_exemplars():
    # Before the applicability check, a relation with fewer than 2 k examples was refused
    # ("needs at least 8 examples per relation"); now the audit falls back, in this order.
    def file(n, relation=None):
        rows = [{"line": i + 1, "turn": 1, "question": f"Who wrote book {i}?", "answer": "A",
                 "answers": ["A"]} for i in range(n)]
        return pd.DataFrame([r | ({"relation": relation} if relation else {}) for r in rows])
    assert audit.choose_exemplars(file(8), 4) == audit.ExemplarChoice(4)
    five = audit.choose_exemplars(file(5), 4)
    assert (five.k_shot, five.builtin) == (2, False)
    assert five.why == "not 4-shot: the file has 5 judged examples (each half's exemplars are " \
                       "the other half)"
    three = audit.choose_exemplars(file(3, "P1"), 4)
    assert (three.k_shot, three.builtin) == (4, True)
    assert three.why.startswith("relation 'P1' has 3 judged examples")
    sampled = audit.choose_exemplars(file(2), 4, pool=file(3))
    assert (sampled.k_shot, sampled.builtin) == (3, False) and "outside the sample" in sampled.why
    # built-in exemplars ask for the same type of answer: people for a "who" question
    pool = audit.builtin_exemplars(audit.as_facts(file(3, "P1"), "t"), seed=0)
    assert len(pool) == audit.BUILTIN_POOL and set(pool["relation"]) == {"P1"}
    assert pool["id"].str.split(":").str[1].isin(audit.ANSWER_TYPES["person"]).all()
    assert audit.answer_type("Where was Mozart born?") == "place"

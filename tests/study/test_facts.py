import pandas as pd
import pytest
from conftest import DATA

from knowshift.core.answers import normalize
from knowshift.core.errors import FactFileError, UnknownRelationError
from knowshift.core.schema import COLUMNS, split_of
from knowshift.study.facts import (load_entityquestions, load_facts, sample_study_set,
                                   select_relations)
from knowshift.study.offline_facts import (ATTRIBUTION, MAX_ANSWER_SHARE, answer_in_question,
                                           cap_skew)


def test_entityquestions_loader_reads_the_published_format():
    df = load_entityquestions(DATA / "entityquestions")
    assert list(df.columns) == COLUMNS
    assert len(df) == 5 + 1 + 2 + 5 + 1 + 2 + 4
    kenya = df[df["question"] == "What is the capital of Kenya?"].iloc[0]
    assert (kenya["subject"], kenya["relation"], kenya["split"]) == ("Kenya", "P36", "train")
    assert kenya["answers"] == ["Nairobi"] and not kenya["ood"]
    munich = df[df["subject"] == "Munich"].iloc[0]
    assert munich["answers"] == ["Germany", "Federal Republic of Germany"]
    assert df[df["relation"] == "P20"]["ood"].all()          # not one of the paper's 12
    assert df["popularity"].isna().all()


def test_entityquestions_bad_input_names_the_problem(tmp_path):
    with pytest.raises(FactFileError, match="does not exist"):
        load_entityquestions(tmp_path / "nowhere")
    with pytest.raises(FactFileError, match="no EntityQuestions files"):
        load_entityquestions(tmp_path)
    with pytest.raises(FactFileError, match=r"P36\.train\.json: not valid JSON"):
        load_entityquestions(DATA / "eq_malformed")
    (tmp_path / "P17.test.json").write_text('[{"question": "Which country is Oslo located in?"}]')
    with pytest.raises(FactFileError, match=r"P17\.test\.json: item 0 needs .*answers"):
        load_entityquestions(tmp_path)
    with pytest.raises(FactFileError, match="fact table .* does not exist"):
        load_facts(str(tmp_path / "missing.parquet"))


def test_unknown_relation_is_one_clear_error():
    df = load_entityquestions(DATA / "entityquestions")
    assert set(select_relations(df, ["P36"])["relation"]) == {"P36"}
    with pytest.raises(UnknownRelationError, match=r"\['P999'\].*\['P17', 'P20', 'P36'\]"):
        select_relations(df, ["P36", "P999"])


def test_split_is_deterministic_by_subject():
    assert split_of("Kenya") == split_of("Kenya") == split_of("  kenya ")
    splits = pd.Series([split_of(f"subject {i}") for i in range(5000)]).value_counts(
        normalize=True)
    assert splits["train"] == pytest.approx(0.7, abs=0.03)
    assert splits["test"] == pytest.approx(0.2, abs=0.03)


def test_offline_fact_set(offline_facts):
    f = offline_facts
    assert list(f.columns) == COLUMNS
    assert f["relation"][~f["ood"]].nunique() >= 10 and f["relation"][f["ood"]].nunique() >= 5
    # one subject, one split, across relations
    per_subject = f.assign(key=f["subject"].map(normalize)).groupby("key")["split"].nunique()
    assert per_subject.max() == 1
    # ambiguous subjects dropped: a subject appears once per relation
    assert not f.duplicated(["relation", "subject"]).any()
    # no answer spelled out in its question
    assert not any(answer_in_question(s, a) for s, a in zip(f["subject"], f["answers"]))
    # skewed relations capped
    top_share = f.groupby("relation")["answer"].agg(lambda s: s.value_counts(normalize=True).max())
    assert (top_share <= MAX_ANSWER_SHARE + 0.01).all()
    assert set(f["source"]) <= set(ATTRIBUTION)
    assert f.loc[f["relation"] == "P36", "popularity"].notna().all()


def test_offline_fact_set_is_rebuilt_identically(offline_facts):
    """Built again from the packages' data, not from the in-memory copy."""
    from knowshift.study.offline_facts import build_offline_facts
    assert build_offline_facts(cached=False).equals(offline_facts)


def test_answer_in_question_and_skew_cap():
    assert answer_in_question("Panama City", ["Panama"])
    assert answer_in_question("Guatemala", ["Guatemala City"])
    assert not answer_in_question("Kenya", ["Nairobi"])
    df = pd.DataFrame({"subject": [f"s{i}" for i in range(100)],
                       "answers": [["A"]] * 80 + [[x] for x in "BCDE" for _ in range(5)]})
    capped = cap_skew(df, max_share=0.25)
    counts = capped["answers"].map(lambda a: a[0]).value_counts()
    assert counts.to_dict() == {"A": 6, "B": 5, "C": 5, "D": 5, "E": 5}   # only A is cut
    assert counts.max() / counts.sum() <= 0.25
    assert capped.equals(cap_skew(df, max_share=0.25))
    three = pd.DataFrame({"subject": [f"s{i}" for i in range(100)],
                          "answers": [["A"]] * 80 + [["B"]] * 10 + [["C"]] * 10})
    counts = cap_skew(three, max_share=0.25)["answers"].map(lambda a: a[0]).value_counts()
    assert counts.to_dict() == {"A": 10, "B": 10, "C": 10}               # 1/3 is the best cap


def test_study_set_is_stratified_and_seeded(offline_facts):
    a = sample_study_set(offline_facts, 24, 12, 12, 10, seed=3)
    b = sample_study_set(offline_facts, 24, 12, 12, 10, seed=3)
    c = sample_study_set(offline_facts, 24, 12, 12, 10, seed=4)
    assert a.equals(b) and not a.equals(c)
    ind = a[~a["ood"]]
    assert (ind["split"] == "train").sum() == 24 and (ind["split"] == "dev").sum() == 12
    assert (a[a["ood"]]["split"] == "test").all() and a["ood"].sum() == 10
    per_relation = ind[ind["split"] == "train"]["relation"].value_counts()
    assert per_relation.max() - per_relation.min() <= 1


def test_the_gpu_smokes_facts_are_the_built_in_facts_they_stand_in_for(tmp_path):
    from knowshift.gpusmoke import FACTS, RELATIONS, write_entityquestions
    written = write_entityquestions(load_facts("offline").sort_values("id"), tmp_path,
                                    RELATIONS, 60)
    kept = sorted(p.relative_to(FACTS) for p in FACTS.rglob("*.json"))
    assert kept == sorted(p.relative_to(written) for p in written.rglob("*.json"))
    assert all((FACTS / f).read_text() == (written / f).read_text() for f in kept)

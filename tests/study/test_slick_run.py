"""A real SliCK run on a few questions with the real default model, and resume after an
interruption."""

import pandas as pd
import pytest

from knowshift.study.facts import exemplar_pool, sample_study_set, select_relations
from knowshift.study.slick import CATEGORIES, SlickConfig, categorize, label_questions

pytestmark = pytest.mark.slow     # every test here loads the model, runs a profile or drives Chromium

CONFIG = SlickConfig(n_exemplar_sets=2, k_shot=4, n_samples=2, batch_size=16)


@pytest.fixture(scope="module")
def study(offline_facts):
    facts = select_relations(offline_facts, ["P36", "P57"])
    return facts, sample_study_set(facts, 6, 0, 4, 0, seed=1)


@pytest.fixture(scope="module")
def labelled(default_model, study, tmp_path_factory):
    net, tok = default_model
    facts, questions = study
    cache = tmp_path_factory.mktemp("slick-cache")
    return cache, label_questions(net, tok, questions, exemplar_pool(facts, questions), CONFIG,
                                  cache, progress=False)


def test_real_slick_run(labelled, study):
    _, table = labelled
    assert len(table) == 10 and set(table["category"]) <= set(CATEGORIES)
    assert table["p_correct_greedy"].between(0, 1).all()
    assert table["p_correct_greedy"].isin([0, 0.5, 1]).all()          # 2 exemplar sets
    # sampling ran exactly for the questions greedy decoding left undecided
    assert (table["p_correct_sample"].notna() == (table["p_correct_greedy"] == 0)).all()
    for _, row in table.iterrows():
        assert row["category"] == categorize(row["p_correct_greedy"], row["p_correct_sample"])
        assert len(row["greedy_predictions"]) == 2
    # a 135M model does not know who directed most films in the set
    assert (table[table["relation"] == "P57"]["category"] == "Unknown").mean() >= 0.5


def test_resume_reuses_finished_chunks(labelled, study, default_model):
    cache, table = labelled
    net, tok = default_model
    facts, questions = study
    chunks = sorted(cache.rglob("set*.parquet"))
    assert len(chunks) >= 4                            # 2 relations x 2 sets greedy, + sampling
    # simulate an interruption: half the chunks were never written, one temp file was left over
    kept = {p: p.stat().st_mtime_ns for p in chunks[::2]}
    for p in chunks[1::2]:
        p.unlink()
    (chunks[0].parent / ".set999.parquet.tmp").write_text("partial")
    again = label_questions(net, tok, questions, exemplar_pool(facts, questions), CONFIG,
                                  cache, progress=False)
    pd.testing.assert_frame_equal(again, table)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())   # not recomputed
    assert all(p.is_file() for p in chunks)                           # the rest redone

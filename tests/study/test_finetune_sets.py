import numpy as np
import pandas as pd
import pytest

from knowshift.core.errors import ParameterError
from knowshift.core.schema import CATEGORIES, IDK_ANSWER
from knowshift.study.finetune_sets import build_sets, eval_sets


@pytest.fixture(scope="module")
def slick_table():
    """A SliCK-shaped table: 4 relations x 40 train questions with a known category spread."""
    rng = np.random.default_rng(0)
    rows = []
    for r in ["P1", "P2", "P3", "P4"]:
        for i in range(40):
            cat = CATEGORIES[i % 4] if i < 32 else "Unknown"
            rows.append({"id": f"{r}:{i}", "relation": r, "question": f"q {r} {i}?",
                         "answer": f"a{i}", "answers": [f"a{i}"], "split": "train",
                         "ood": False, "category": cat, "known": cat != "Unknown"})
    for split, ood in [("dev", False), ("test", False), ("test", True)]:
        for i in range(6):
            rows.append({"id": f"{split}{ood}:{i}", "relation": "P1", "question": "q?",
                         "answer": "a", "answers": ["a"], "split": split, "ood": ood,
                         "category": CATEGORIES[i % 4], "known": i % 4 != 3})
    return pd.DataFrame(rows).sample(frac=1, random_state=int(rng.integers(100)))


def test_mixes_have_the_asked_size_and_share_and_are_nested(slick_table):
    sets = build_sets(slick_table, 40, [0, 0.25, 0.5, 1.0], seed=1)
    for share in [0, 0.25, 0.5, 1.0]:
        s = sets[sets["variant"] == f"mix_{share:.0%}"]
        assert len(s) == 40 and (~s["known"]).sum() == round(40 * share)
        assert s["id"].is_unique and (s["target"] == s["answers"].map(lambda a: a[0])).all()
        per_relation = s["relation"].value_counts()
        assert per_relation.max() - per_relation.min() <= 1           # spread over relations
    unk = {v: set(g.loc[~g["known"], "id"]) for v, g in sets.groupby("variant")}
    assert unk["mix_25%"] <= unk["mix_50%"] <= unk["mix_100%"]
    assert sets.equals(build_sets(slick_table, 40, [0, 0.25, 0.5, 1.0], seed=1))


def test_pure_filtered_and_idk_sets(slick_table):
    sets = build_sets(slick_table, 40, [0.5], pure_size=12,
                      pure_categories=CATEGORIES + ["Natural"], mitigation_shares=[0.5], seed=0)
    for cat in CATEGORIES:
        s = sets[sets["variant"] == f"pure_{cat}"]
        assert len(s) == 12 and (s["slick_category"] == cat).all()
    mix, filt, idk = (sets[sets["variant"] == v] for v in ("mix_50%", "filtered_50%", "idk_50%"))
    assert len(filt) == 20 and filt["known"].all()
    assert set(filt["id"]) == set(mix.loc[mix["known"], "id"])
    assert set(idk["id"]) == set(mix["id"])
    assert (idk.loc[~idk["known"], "target"] == IDK_ANSWER).all()
    assert (idk.loc[idk["known"], "target"] != IDK_ANSWER).all()
    assert idk["relabelled"].sum() == 20


def test_bad_requests_are_clear_errors(slick_table):
    with pytest.raises(ParameterError, match="a 100% Unknown mix of d_size 70 needs 70 Unknown, "
                                             "but the 160 train questions SliCK labelled hold "
                                             "HighlyKnown 32, MaybeKnown 32, WeaklyKnown 32, "
                                             "Unknown 64"):
        build_sets(slick_table, 70, [1.0], seed=0)
    with pytest.raises(ParameterError, match="pure_size 40 is more than SliCK put in "
                                             "D_HighlyKnown, but the 160"):
        build_sets(slick_table, 10, [0], pure_size=40, pure_categories=["HighlyKnown", "Natural"],
                   seed=0)
    with pytest.raises(ParameterError, match=r"shares must lie in \[0, 1\]"):
        build_sets(slick_table, 10, [1.5], seed=0)
    with pytest.raises(ParameterError, match="unknown_shares has 0.12 and 0.125, which would "
                                             "both name the variant '12%'"):
        build_sets(slick_table, 10, [0.12, 0.125], seed=0)
    with pytest.raises(ParameterError, match="mitigation_shares repeats the share 0.5"):
        build_sets(slick_table, 10, [0], mitigation_shares=[0.5, 0.5], seed=0)
    with pytest.raises(ParameterError, match="unknown category 'Famous'"):
        build_sets(slick_table, 10, [0], pure_size=2, pure_categories=["Famous"], seed=0)


def test_eval_sets_split_dev_test_and_ood(slick_table):
    held = eval_sets(slick_table)
    assert {k: len(v) for k, v in held.items()} == {"dev": 6, "test": 6, "ood": 6}
    assert held["ood"]["ood"].all() and not held["test"]["ood"].any()


def _uneven():
    """Train questions whose categories differ by relation: P1 has 2 HighlyKnown and 10 Unknown,
    P2 9 of each, P3 no MaybeKnown."""
    spread = {"P1": {"HighlyKnown": 2, "MaybeKnown": 5, "Unknown": 10},
              "P2": {"HighlyKnown": 9, "MaybeKnown": 9, "Unknown": 9},
              "P3": {"HighlyKnown": 6, "Unknown": 6}}
    rows = [{"id": f"{r}:{c}:{i}", "relation": r, "question": f"q {r} {c} {i}?", "answer": "a",
             "answers": ["a"], "split": "train", "ood": False, "category": c,
             "known": c != "Unknown"}
            for r, counts in spread.items() for c, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows)


def test_pure_size_auto_is_the_papers_rule_with_one_relation_mix():
    """Per relation the smallest asked category's count, summed (the paper's 6,142); every
    pure set takes that many from each relation; capped at |D|, relations scaled alike."""
    from knowshift.study.finetune_sets import pure_quotas, size_problem
    table = _uneven()
    asked = ["HighlyKnown", "Unknown", "Natural"]
    assert pure_quotas(table, asked, 100).to_dict() == {"P1": 2, "P2": 9, "P3": 6}
    sets = build_sets(table, 30, [0.5], pure_size="auto", pure_categories=asked, seed=0)
    for category in asked:
        s = sets[sets["variant"] == f"pure_{category}"]
        assert s["relation"].value_counts().to_dict() == {"P2": 9, "P3": 6, "P1": 2}
        assert s["id"].is_unique
        if category != "Natural":
            assert (s["slick_category"] == category).all()
    capped = pure_quotas(table, asked, 10)
    assert capped.sum() == 10 and capped.to_dict() == {"P1": 1, "P2": 5, "P3": 4}
    assert pure_quotas(table, ["MaybeKnown", "Unknown"], 100).sum() == 5 + 9    # P3: none
    assert "pure_size auto is 0" in size_problem(table, 4, [0.5], "auto", ["WeaklyKnown"])


def test_pure_size_is_a_number_or_auto():
    from knowshift.core.params import resolve
    assert resolve("workshop", {"pure_size": "auto"})["pure_size"] == "auto"
    with pytest.raises(ParameterError, match="pure_size"):
        resolve("workshop", {"pure_size": "half"})

import pandas as pd
import pytest

from knowshift.core.errors import ParameterError
from knowshift.study.categories import category_mix
from knowshift.study.slick import CATEGORIES, categorize, draw_exemplar_sets


@pytest.mark.parametrize("p_greedy, p_sample, expected", [
    (1.0, None, "HighlyKnown"),
    (0.9, None, "MaybeKnown"),
    (0.1, 0.0, "MaybeKnown"),
    (0.0, 0.01, "WeaklyKnown"),
    (0.0, 0.0, "Unknown"),
    (0.0, None, "Unknown"),
])
def test_category_rules(p_greedy, p_sample, expected):
    assert categorize(p_greedy, p_sample) == expected


def test_category_mix_counts_every_category():
    table = pd.DataFrame({"relation": ["P1", "P1", "P2", "P2"],
                          "category": pd.Categorical(["HighlyKnown", "Unknown", "Unknown",
                                                      "Unknown"], categories=CATEGORIES)})
    overall = category_mix(table)
    assert overall.loc["Unknown", "n"] == 3 and overall.loc["WeaklyKnown", "n"] == 0
    assert overall["share"].sum() == pytest.approx(1)
    by = category_mix(table, "relation")
    assert by.loc["P1", "HighlyKnown"] == 0.5 and by.loc["P2", "Unknown"] == 1.0


def test_exemplar_sets_are_seeded_and_from_the_relation():
    pool = pd.DataFrame({"id": [f"P1:{i}" for i in range(20)] + ["P2:0"],
                         "relation": ["P1"] * 20 + ["P2"]})
    a = draw_exemplar_sets(pool, "P1", 3, 4, seed=1)
    b = draw_exemplar_sets(pool, "P1", 3, 4, seed=1)
    c = draw_exemplar_sets(pool, "P1", 3, 4, seed=2)
    assert [list(x["id"]) for x in a] == [list(x["id"]) for x in b]
    assert [list(x["id"]) for x in a] != [list(x["id"]) for x in c]
    assert all(len(x) == 4 and set(x["relation"]) == {"P1"} for x in a)
    with pytest.raises(ParameterError, match="P2 has only 1 questions to draw exemplars from"):
        draw_exemplar_sets(pool, "P2", 1, 4, seed=0)


def test_small_relations_share_blocks_and_large_ones_stand_alone():
    from knowshift.study.slick import group_chunks
    chunks = [(r, i) for r in ("A", "B", "C") for i in range(2)]
    # A block fits one batch of 8 rows, so it leaves no small tail batch; a 50-row chunk
    # stands alone.
    assert group_chunks(chunks, {"A": 3, "B": 3, "C": 50}, 8) == [
        [("A", 0), ("A", 1)], [("B", 0), ("B", 1)], [("C", 0)], [("C", 1)]]
    assert group_chunks(chunks[:4], {"A": 4, "B": 4}, 8) == [[("A", 0), ("A", 1)],
                                                       [("B", 0), ("B", 1)]]
    assert group_chunks(chunks[:4], {"A": 2, "B": 2}, 8) == [chunks[:4]]
    assert group_chunks(chunks[:1], {"A": 3}, 8) == [[("A", 0)]]

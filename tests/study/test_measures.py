"""Each finding's measure on a small run made by hand: four test questions per set and two
fine-tuning seeds, written to a run folder as the stages write them, so that every number a
measure gives can be worked out here on paper (tests/handmade_run.py). No model, no run."""

import math

import numpy as np
import pytest
from handmade_run import CONV, ES, VARIANTS, _rows, write_run
from scipy import stats as sps

from knowshift.core import stats
from knowshift.core.layout import RunFolder
from knowshift.study import findings, measures


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run")


@pytest.fixture
def tables(run_dir):
    return measures.RunTables(run_dir)


def t_interval(values):
    """Student's t 95 % interval of per-seed values, worked out here."""
    v = np.asarray(values, dtype=float)
    half = sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def test_the_run_tables_read_each_product_and_refuse_a_missing_one(tmp_path, tables):
    assert set(tables.checkpoints["variant"]) == set(VARIANTS)
    answers = tables.answers("mix_0%", CONV)
    assert list(answers.columns) == ["seed", "id", "correct", "abstained", "known", "epoch"]
    assert len(answers) == 8 and set(answers["epoch"]) == {2}
    RunFolder(tmp_path / "run").path("coefficients").unlink()
    with pytest.raises(Exception, match="regression"):
        measures.RunTables(tmp_path / "run")


def test_paired_keeps_the_questions_every_column_shares(tables):
    per_seed = measures.paired(tables, [("mix_100%", CONV, "correct"), ("mix_0%", CONV, "correct")])
    assert len(per_seed) == 2
    hi, lo = per_seed[0]
    assert list(hi) == [0, 0, 0, 0] and list(lo) == [1, 1, 1, 0]   # q9 left out
    answered = measures.paired(tables, [("idk_50%", CONV, "answered")])
    assert list(answered[0][0]) == [1, 1, 0, 0]


def test_mix_variants_by_unknown_share(tables):
    mixes = measures.mix_variants(tables)
    assert list(mixes.index) == [0.0, 0.5, 1.0]
    assert list(mixes) == ["mix_0%", "mix_50%", "mix_100%"]


def test_accuracy_drop_is_the_mean_over_seeds_of_the_paired_difference(tables):
    text, est = measures.accuracy_drops(tables)
    # CONVERGENCE: seed 0 0 - .75, seed 1 .25 - .75; EARLY_STOP: .25 - .75, .75 - .5
    assert est.value == pytest.approx(-0.625)
    value, low, high = t_interval([-0.75, -0.5])
    assert (est.low, est.high) == (pytest.approx(max(low, -1)), pytest.approx(min(high, 1)))
    assert est.method == "t across 2 seeds" and est.df == 1
    assert "0% → 100% Unknown" in text
    assert "CONVERGENCE -62.5" in text and "EARLY_STOP -12.5" in text


def test_fitted_slower_is_the_area_between_the_fitting_curves(tables):
    text, est = measures.fitted_slower(tables)
    # seed 0: Known (.75 + 1) / 2 - Unknown (.25 + 0) / 2 = .75; seed 1: .5 - .25 = .25
    assert est.value == pytest.approx(0.5)
    assert est.method == "t across 2 seeds"
    assert text.startswith("50% Unknown mix over epochs 1-4")
    assert "a Known example is fitted at 69% of epochs, an Unknown one at 19%" in text


def test_fitted_slower_needs_a_mix_between_the_ends(tmp_path):
    results, checkpoints = _rows()
    checkpoints = checkpoints[checkpoints["variant"] != "mix_50%"]
    t = measures.RunTables(write_run(tmp_path / "ends", checkpoints=checkpoints))
    assert measures.fitted_slower(t) == measures.NOT_RUN


def test_the_overfitting_gap_growth(tables):
    text, est = measures.overfitting_grows(tables)
    # gap at 100 %: .25 - 0, .75 - .25; at 0 %: .75 - .75, .5 - .75 -> growth .25, .75
    assert est.value == pytest.approx(0.5)
    assert measures.gap_growth(np.array([.25]), np.array([0.]), np.array([.75]),
                               np.array([.75])) == pytest.approx(0.25)
    assert "growth 50.0" in text and "at 0% Unknown" in text


def test_filtering_is_d_known_minus_d(tables):
    text, est = measures.filtering(tables)
    assert est.value == pytest.approx(0.375)            # .75 - .25 and .5 - .25
    assert "CONVERGENCE 37.5" in text and "EARLY_STOP 0.0" in text
    assert measures.mitigation(tables, "filtered") == ("mix_50%", "filtered_50%", 0.5)
    assert measures.mitigation(tables, "nothing") is None


def test_maybeknown_minus_the_best_other_pure_set(tables):
    text, est = measures.versus_others(tables, "D_MaybeKnown", ES, best=True)
    # the best other by mean accuracy is D_Natural (.5 against D_HighlyKnown .375): .75 - .75,
    # .5 - .25
    assert est.value == pytest.approx(0.125)
    assert text.startswith("EARLY_STOP: D_MaybeKnown 62.5, D_Natural 50.0, D_HighlyKnown 37.5")
    assert "D_MaybeKnown − D_Natural" in text


def test_unknown_minus_the_worst_other_pure_set(tables):
    text, est = measures.versus_others(tables, "D_Unknown", CONV, best=False)
    assert est.value == pytest.approx(-0.25)           # 0 - .25 and .25 - .5 against D_Natural
    assert (est.low, est.high) == (pytest.approx(-0.25), pytest.approx(-0.25))
    assert "D_Unknown − D_Natural" in text
    assert measures.versus_others(tables, "D_WeaklyKnown", CONV, best=False) == measures.NOT_RUN


def test_idk_gain_is_accuracy_on_answered_minus_d(tables):
    text, est = measures.idk(tables)
    # seed 0: 2 right of 2 answered - .25; seed 1: 1 of 2 - .25
    assert est.value == pytest.approx(0.5)
    assert "D_IDK accuracy on the 50% it answers" in text
    assert measures.mitigated_mix_accuracy(CONV)(tables) == pytest.approx(0.25)


def test_a_coefficient_is_read_back_with_its_clustered_interval(tables):
    text, est = measures.coefficient("in-distribution", "unknown_share")(tables)
    assert (est.value, est.low, est.high) == (-0.083, -0.12, -0.046)
    assert est.df == 14 and est.method == "OLS clustered by 15 runs"
    assert est.se == pytest.approx(0.074 / (2 * sps.t.ppf(0.975, 14)))
    assert text == "-8.3 [-12.0, -4.6], p = 0.012, R² = 0.86 (90 points, 15 runs)"
    assert measures.coefficient("out-of-distribution", "unknown_share")(tables) == \
        measures.NOT_RUN
    assert measures.intercept("in-distribution")(tables) == 0.20
    with pytest.raises(KeyError):
        measures.intercept("out-of-distribution")(tables)


def test_the_category_shares_with_wilson_intervals(tables):
    text, est = measures.category_shares(tables)
    assert est is None
    assert text.startswith("HighlyKnown 25 [7, 59]; MaybeKnown 12 [")   # Wilson, 2 of 8
    assert "Unknown 50 [22, 78]" in text and text.endswith("% of 8 questions")


def test_the_scale_baselines(tables):
    assert measures.natural_accuracy(ES)(tables) == pytest.approx(0.5)
    assert measures.natural_accuracy(CONV)(tables) == pytest.approx(0.375)
    assert measures.pure_estimates(tables, CONV)["D_MaybeKnown"] == pytest.approx(0.75)
    worst = findings.by_id("unknown-worst")
    # the paper's -9.6 points times our D_Natural at CONVERGENCE over the paper's 41.8
    assert worst.scaled(tables) == pytest.approx(-0.096 * 37.5 / 41.8)
    assert findings.by_id("beta-unk").scaled(tables) == pytest.approx(-0.083 * 20 / 36.9)
    assert math.isnan(findings.by_id("ood-beta-unk").scaled(tables))    # no OOD β0 here
    assert math.isnan(findings.by_id("gap-grows").scaled(tables))       # direction only


def test_compare_gives_each_finding_by_id_with_its_measure(run_dir):
    table = findings.compare(run_dir)
    assert list(table["id"]) == list(findings.IDS)
    assert list(table.columns[:3]) == ["id", "finding", "section"]
    effect = table.set_index("id")["effect"]
    assert effect["unknown-lowers-accuracy"] == pytest.approx(-0.625)
    assert effect["fitted-slower"] == pytest.approx(0.5)
    assert effect["gap-grows"] == pytest.approx(0.5)
    assert effect["harmful-once-fitted"] == pytest.approx(0.375)
    assert effect["beta-unk"] == pytest.approx(-0.083)
    assert effect["maybeknown-best"] == pytest.approx(0.125)
    assert effect["unknown-worst"] == pytest.approx(-0.25)
    assert effect["idk-helps"] == pytest.approx(0.5)
    verdict = table.set_index("id")["verdict"]
    assert verdict["slick-mix"] == "-" and verdict["unknown-worst"] == stats.AGREES
    assert verdict["beta-unk"] == stats.AGREES
    ood = table.set_index("id").loc["ood-beta-unk"]
    assert ood["ours"] == measures.NOT_RUN[0] and ood["verdict"] == "-"

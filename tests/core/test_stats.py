"""The statistics behind every interval and verdict, on constructed data with known answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from knowshift.core import stats
from knowshift.study.regression import coefficient_table, fit


def _runs(rng, n_runs=24, epochs=6, run_sd=0.04, noise=0.01):
    """Points of a planted linear model; each run shares one offset (its epochs are not
    independent), as the fine-tuning runs of one seed and mix do."""
    rows = []
    for r in range(n_runs):
        offset = rng.normal(0, run_sd)
        for e in range(epochs):
            k, u = rng.uniform(0, 1, 2)
            rows.append({"seed": r % 3, "variant": f"mix_{r}", "epoch": e,
                         "fitted_known_share": k, "fitted_unknown_share": u,
                         "test_accuracy": 0.30 + 0.10 * k - 0.20 * u + offset
                         + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_clustered_ols_recovers_planted_coefficients_and_widens_errors():
    points = _runs(np.random.default_rng(0))
    res = fit(points)
    assert res.cov_type == "cluster"
    assert res.params["known_share"] == pytest.approx(0.10, abs=0.03)
    assert res.params["unknown_share"] == pytest.approx(-0.20, abs=0.03)
    table = coefficient_table({"in-distribution": res}).set_index("term")
    assert table.loc["unknown_share", "clusters"] == 24 and table.loc["unknown_share", "n"] == 144
    assert table.loc["unknown_share", "ci_low"] < -0.20 < table.loc["unknown_share", "ci_high"]
    assert table.loc["unknown_share", "ci_high"] < 0
    naive = fit(points.drop(columns=["seed", "variant"]))         # one cluster per point
    assert res.bse["Intercept"] > naive.bse["Intercept"]          # run offsets widen it


def test_clustered_intervals_cover_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(200):
        ci = fit(_runs(rng)).conf_int().loc["unknown_share"]
        covered.append(ci[0] < -0.20 < ci[1])
    assert 0.88 <= np.mean(covered) <= 0.99


def test_paired_bootstrap_covers_a_planted_difference():
    rng = np.random.default_rng(2)
    n = 400
    base = rng.random(n) < 0.30                               # right under training set A
    flips = rng.random(n)
    other = np.where(flips < 0.10, False, base)               # B loses ~10 % of A's rights
    est = stats.bootstrap((other.astype(float), base.astype(float)), stats.difference)
    planted = other.mean() - base.mean()
    assert est.value == pytest.approx(planted)
    assert est.low < planted < est.high and est.high < 0
    assert est.method == "bootstrap over 400 questions"
    unpaired = stats.bootstrap((other.astype(float), base.astype(float)), stats.difference,
                               paired=False)
    assert unpaired.high - unpaired.low > est.high - est.low  # pairing removes shared noise


def test_one_seed_bootstraps_and_several_seeds_take_t_across_seeds():
    rng = np.random.default_rng(3)
    per_seed = [(rng.random(50) < p,) for p in (0.2, 0.3, 0.25)]
    est = stats.estimate(per_seed, stats.mean)
    values = [s[0].mean() for s in per_seed]
    low, high = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
    assert est.value == pytest.approx(np.mean(values))
    assert (est.low, est.high) == pytest.approx((max(low, -1), min(high, 1)))
    assert est.method == "t across 3 seeds"
    assert stats.estimate(per_seed[:1], stats.mean).method == "bootstrap over 50 questions"
    clipped = stats.estimate([(np.array([0.0, 0.0]),), (np.array([0.0, 1.0]),)], stats.mean,
                             bounds=(0.0, 1.0))
    assert clipped.low == 0.0                                # an accuracy is never below 0


@pytest.mark.parametrize("low, high, direction, expected", [
    (-0.15, -0.04, -1, stats.AGREES), (0.02, 0.09, +1, stats.AGREES),
    (-0.12, 0.02, -1, stats.INCONCLUSIVE), (-0.12, 0.02, +1, stats.INCONCLUSIVE),
    (0.01, 0.07, -1, stats.DISAGREES), (-0.3, -0.1, +1, stats.DISAGREES)])
def test_the_verdict_rule_gives_each_of_its_three_answers(low, high, direction, expected):
    est = stats.Estimate((low + high) / 2, low, high, "constructed")
    assert stats.verdict(est, direction) == expected


def test_no_interval_no_verdict():
    assert stats.verdict(stats.Estimate(-0.1, np.nan, np.nan, "one seed"), -1) == "-"


def test_proportion_interval_is_wilson():
    est = stats.proportion(12, 40)
    assert est.value == 0.3 and 0.17 < est.low < 0.3 < est.high < 0.46


@pytest.mark.parametrize("low, high, target, expected", [
    # a harmful effect (target below zero)
    (-0.12, -0.04, -0.08, stats.AS_LARGE), (-0.12, -0.08, -0.08, stats.AS_LARGE),
    (-0.06, -0.01, -0.08, stats.SMALLER), (0.01, 0.05, -0.08, stats.SMALLER),
    (-0.20, -0.10, -0.08, stats.LARGER), (-0.10, 0.02, -0.08, stats.UNDETERMINED),
    (-0.10, 0.0, -0.08, stats.UNDETERMINED), (-0.05, 0.02, -0.08, stats.SMALLER),
    # a helpful one (target above zero)
    (0.05, 0.30, 0.23, stats.AS_LARGE), (0.02, 0.22, 0.23, stats.SMALLER),
    (0.25, 0.40, 0.23, stats.LARGER), (-0.02, 0.30, 0.23, stats.UNDETERMINED),
    (-0.30, -0.10, 0.23, stats.SMALLER)])
def test_the_size_verdict_gives_each_of_its_four_answers_at_the_boundaries(
        low, high, target, expected):
    """Interval ends count as included: an end on zero leaves zero in, an end on the
    paper's scaled effect leaves it in."""
    est = stats.Estimate((low + high) / 2, low, high, "constructed")
    assert stats.size_verdict(est, target) == expected


def test_no_interval_or_no_scaled_effect_no_size_verdict():
    assert stats.size_verdict(stats.Estimate(-0.1, np.nan, np.nan, "one seed"), -0.05) == "-"
    assert stats.size_verdict(stats.Estimate(-0.1, -0.2, 0.0, "t"), np.nan) == "-"


def test_the_chance_of_agreements_with_no_effect_anywhere():
    assert stats.chance_verdicts(10, 0) == 1.0
    assert abs(stats.chance_verdicts(10, 1) - (1 - 0.975 ** 10)) < 1e-12
    assert stats.chance_verdicts(10, 4) < 1e-4

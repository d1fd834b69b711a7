"""What a run could see: the smallest effect each finding detects with 80 % power
(:func:`knowshift.core.stats.detectable`), checked by drawing studies again from real per-question
results with that effect injected and reading each through the same estimate-and-verdict code.

The data (``tests/data/power``) are real: per seed and test question, whether the 0 % and the
100 % Unknown mixes answered right at CONVERGENCE, from a workshop run (README there)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knowshift.core import stats

DATA = Path(__file__).parents[1] / "data" / "power" / "paired_results.csv"
REPETITIONS = 2000


@pytest.fixture(scope="module")
def seeds():
    table = pd.read_csv(DATA)
    return [(g["first"].to_numpy(float), g["second"].to_numpy(float))
            for _, g in table.groupby("seed")]


def _drawer(seeds, rng):
    """One seed of a study drawn again: a real seed's questions, resampled (paired)."""
    def draw():
        first, second = seeds[rng.integers(len(seeds))]
        rows = rng.integers(len(first), size=len(first))
        return first[rows], second[rows]
    return draw


def _detection_rate(seeds, n_seeds: int, rng) -> tuple[float, float]:
    """(the effect :func:`stats.detectable` computes for a study of ``n_seeds`` drawn this
    way, the share of such studies with that effect injected whose verdict *agrees*)."""
    draw = _drawer(seeds, rng)
    values = np.array([stats.difference(*draw()) for _ in range(20_000)])
    centre = values.mean()
    if n_seeds == 1:
        planned = stats.Estimate(0.0, np.nan, np.nan, "planned", values.std(ddof=1))
    else:
        planned = stats.Estimate(0.0, np.nan, np.nan, "planned",
                                 values.std(ddof=1) / np.sqrt(n_seeds), n_seeds - 1)
    effect = stats.detectable(planned)
    agreed = 0
    for _ in range(REPETITIONS):
        study = []
        for _ in range(n_seeds):
            first, second = draw()
            study.append((first + effect - centre, second))    # the true effect is now `effect`
        agreed += stats.verdict(stats.estimate(study, stats.difference), +1) == stats.AGREES
    return effect, agreed / REPETITIONS


def test_the_detectable_effect_across_five_seeds_is_detected_about_80_percent_of_the_time(
        seeds):
    effect, rate = _detection_rate(seeds, 5, np.random.default_rng(0))
    assert 0 < effect < 1
    assert 0.75 <= rate <= 0.85, (effect, rate)


def test_the_detectable_effect_of_one_seed_bootstrap_is_detected_about_80_percent_of_the_time(
        seeds):
    """One seed: the bootstrap's interval sees the test questions' noise only, so the study is
    drawn again from one real seed's questions."""
    effect, rate = _detection_rate(seeds[:1], 1, np.random.default_rng(1))
    assert 0.75 <= rate <= 0.85, (effect, rate)


def test_more_seeds_detect_smaller_effects():
    per_seed = [0.05, 0.1, 0.02, 0.08, 0.12, 0.06, 0.09, 0.03, 0.07, 0.11]
    three, ten = stats.across_seeds(per_seed[:3]), stats.across_seeds(per_seed)
    assert stats.detectable(ten) < stats.detectable(three)
    assert np.isnan(stats.detectable(stats.across_seeds(per_seed[:1])))

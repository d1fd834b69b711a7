"""Every finding's effect measure, and the baseline its scale divides by, checked against a
number worked out by hand on a small run folder written here (no model, no fine-tuning).

The run: two fine-tuning seeds, epochs 1-3, four test questions q1-q4 per set (the 100 % mix
alone is also asked a fifth, which pairing leaves out), so that every accuracy is a count of
right answers over 4 and every effect can be counted on paper. EARLY_STOP is epoch 1 for seed 0
and epoch 2 for seed 1; CONVERGENCE is epoch 3 for both. The mixes are tested after every
epoch, as the pipeline tests them: at the one epoch of each seed that is no checkpoint, every
answer is right, so a measure that read the wrong epoch would be caught.

The tests walk the registry (:data:`knowshift.study.findings.FINDINGS`), calling each finding's
own measure and scale: a finding with no hand-checked case below, or one that no profile here
leaves unmeasured, fails :func:`test_every_finding_has_a_hand_checked_case`; so does a new one.
(tests/study/test_measures.py checks the measures' helpers on another hand-made run.)"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from knowshift.core.files import write_parquet
from knowshift.core.layout import RunFolder
from knowshift.study import findings, measures

ES, CONV = "EARLY_STOP", "CONVERGENCE"
SEEDS = (0, 1)
LAST = 3                        # epochs 1-3; CONVERGENCE is the last
EARLY = {0: 1, 1: 2}            # the EARLY_STOP epoch of seed 0, seed 1
QUESTIONS = ("q1", "q2", "q3", "q4")

# variant -> (kind, Unknown share, pure category), as stage 3 writes them in `checkpoints`
VARIANTS = {
    "mix_0%": ("mix", 0.0, None),
    "mix_20%": ("mix", 0.2, None),
    "mix_60%": ("mix", 0.6, None),          # the mix nearest 50 % Unknown
    "mix_100%": ("mix", 1.0, None),
    "filtered_20%": ("filtered", 0.2, None),
    "idk_20%": ("idk", 0.2, None),
    "pure_HighlyKnown": ("pure", 0.0, "HighlyKnown"),
    "pure_MaybeKnown": ("pure", 0.0, "MaybeKnown"),
    "pure_WeaklyKnown": ("pure", 0.0, "WeaklyKnown"),
    "pure_Unknown": ("pure", 1.0, "Unknown"),
    "pure_Natural": ("pure", 0.6, "Natural"),  # a pure set's share is not a mix's: never read
}
PURE = [v for v in VARIANTS if v.startswith("pure_")]

# (variant, checkpoint) -> how many of q1-q4 (the first k) seed 0, seed 1 answer right
RIGHT = {
    ("mix_0%", ES): (2, 3),              # .50, .75
    ("mix_0%", CONV): (3, 2),            # .75, .50
    ("mix_20%", ES): (2, 2),             # .50, .50
    ("mix_20%", CONV): (2, 1),           # .50, .25
    ("mix_60%", ES): (3, 2),
    ("mix_60%", CONV): (1, 1),
    ("mix_100%", ES): (1, 2),            # .25, .50
    ("mix_100%", CONV): (1, 1),          # .25, .25
    ("filtered_20%", ES): (2, 2),        # as its D (mix_20%) at EARLY_STOP
    ("filtered_20%", CONV): (3, 4),      # .75, 1.0
    ("idk_20%", ES): (2, 1),             # (CONVERGENCE: IDK_CONVERGENCE)
    # EARLY_STOP, mean over seeds: MaybeKnown .75 > HighlyKnown .625 > Natural .5 >
    # WeaklyKnown .375 > Unknown .25
    ("pure_HighlyKnown", ES): (3, 2),
    ("pure_MaybeKnown", ES): (4, 2),
    ("pure_Natural", ES): (2, 2),
    ("pure_WeaklyKnown", ES): (1, 2),
    ("pure_Unknown", ES): (1, 1),
    # CONVERGENCE: MaybeKnown .875 > HighlyKnown .75 > Natural .625 > WeaklyKnown .375 >
    # Unknown .25
    ("pure_HighlyKnown", CONV): (3, 3),
    ("pure_MaybeKnown", CONV): (4, 3),
    ("pure_Natural", CONV): (3, 2),
    ("pure_WeaklyKnown", CONV): (1, 2),
    ("pure_Unknown", CONV): (0, 2),
}
# D_IDK at CONVERGENCE, per seed: (right, answered) for q1-q4 (an abstention is never right).
# Seed 0 answers 3 and gets 2 right; seed 1 answers 1 and gets it right.
IDK_CONVERGENCE = {0: ([1, 1, 0, 0], [1, 1, 1, 0]), 1: ([1, 0, 0, 0], [1, 0, 0, 0])}
EXTRA = "q5"                    # asked of mix_100% only (right every time): never paired

# The train examples of mix_60% (k1, k2 Known; u1, u2, u3 Unknown): fitted or not at epochs 1-3
TRAIN_60 = {0: {"k1": [1, 1, 1], "k2": [0, 1, 1],                      # Known 1, 2/3
                "u1": [0, 0, 1], "u2": [0, 0, 0], "u3": [0, 1, 1]},    # Unknown 1/3, 0, 2/3
            1: {"k1": [0, 1, 1], "k2": [0, 0, 1],                      # Known 2/3, 1/3
                "u1": [0, 0, 0], "u2": [0, 0, 0], "u3": [0, 0, 1]}}    # Unknown 0, 0, 1/3
# mix_20%'s train examples are all fitted at every epoch: read, they would give 0.
TRAIN_20 = ("k1", "u1")

COEFFICIENT_COLUMNS = ["model", "term", "coef", "ci_low", "ci_high", "p_value", "r_squared",
                       "n", "clusters"]
ID, OOD = "in-distribution", "out-of-distribution"
COEFFICIENTS = [
    (ID, "Intercept", 0.30, 0.25, 0.35, 0.0, 0.71, 60, 8),
    (ID, "known_share", 0.04, -0.02, 0.10, 0.2, 0.71, 60, 8),
    (ID, "unknown_share", -0.06, -0.10, -0.02, 0.004, 0.71, 60, 8),
    (OOD, "Intercept", 0.10, 0.05, 0.15, 0.01, 0.40, 60, 8),
    (OOD, "known_share", 0.01, -0.01, 0.03, 0.3, 0.40, 60, 8),
    (OOD, "unknown_share", -0.02, -0.05, 0.01, 0.18, 0.40, 60, 8),
]
# The study set's SliCK labels: 5 / 3 / 2 / 10 of 20, i.e. 25 / 15 / 10 / 50 %
SLICK = {"HighlyKnown": 5, "MaybeKnown": 3, "WeaklyKnown": 2, "Unknown": 10}


def _test_rows(variant: str, seed: int, epoch: int) -> list[dict]:
    checkpoint = {EARLY[seed]: ES, LAST: CONV}.get(epoch)
    if checkpoint is None:                               # a mix between its checkpoints
        right, answered = [1] * 4, [1] * 4
    elif (variant, checkpoint) == ("idk_20%", CONV):
        right, answered = IDK_CONVERGENCE[seed]
    else:
        k = RIGHT[variant, checkpoint][seed]
        right, answered = [1] * k + [0] * (4 - k), [1] * 4
    rows = [{"seed": seed, "variant": variant, "epoch": epoch, "set": "test", "id": q,
             "correct": bool(r), "abstained": not a, "known": q in ("q1", "q2")}
            for q, r, a in zip(QUESTIONS, right, answered)]
    if variant == "mix_100%":
        rows.append({**rows[0], "id": EXTRA, "correct": True})
    return rows


def _train_rows(variant: str, seed: int, examples: dict[str, list[int]]) -> list[dict]:
    return [{"seed": seed, "variant": variant, "epoch": epoch, "set": "train", "id": ex,
             "correct": bool(fitted), "abstained": False, "known": ex.startswith("k")}
            for ex, curve in examples.items() for epoch, fitted in enumerate(curve, 1)]


def write_run(root, seeds=SEEDS, variants=tuple(VARIANTS), coefficients=COEFFICIENTS,
              slick=SLICK):
    """A run folder holding the four products the measures read (only the columns they
    read), for ``seeds`` and the fine-tuning sets ``variants`` of the tables above."""
    results, checkpoints = [], []
    for variant in variants:
        kind, share, category = VARIANTS[variant]
        for seed in seeds:
            for name, epoch in ((ES, EARLY[seed]), (CONV, LAST)):
                checkpoints.append({"seed": seed, "variant": variant, "checkpoint": name,
                                    "epoch": epoch, "kind": kind, "unknown_share": share,
                                    "category": category})
            tested = range(1, LAST + 1) if kind == "mix" else (EARLY[seed], LAST)
            for epoch in tested:
                results += _test_rows(variant, seed, epoch)
            if variant == "mix_60%":
                results += _train_rows(variant, seed, TRAIN_60[seed])
            if variant == "mix_20%":
                results += _train_rows(variant, seed, {ex: [1] * LAST for ex in TRAIN_20})
    run = RunFolder(root)
    tables = {
        "results": pd.DataFrame(results),
        "checkpoints": pd.DataFrame(checkpoints),
        "coefficients": pd.DataFrame(coefficients, columns=COEFFICIENT_COLUMNS),
        "slick": pd.DataFrame({"id": [f"s{i}" for i in range(sum(slick.values()))],
                               "category": [c for c, n in slick.items() for _ in range(n)]}),
    }
    for product, table in tables.items():
        write_parquet(table, run.path(product))
    return run.root


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    return measures.RunTables(write_run(tmp_path_factory.mktemp("two-seeds")))


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    return measures.RunTables(write_run(tmp_path_factory.mktemp("one-seed"), seeds=(0,)))


def t95(per_seed, bounds=(-1.0, 1.0)):
    """Mean of per-seed values and Student's t 95 % interval, clipped to ``bounds``."""
    v = np.asarray(per_seed, dtype=float)
    half = sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), max(v.mean() - half, bounds[0]), min(v.mean() + half, bounds[1])


def wilson(k, n):
    """Wilson score 95 % interval of k of n, by its formula."""
    z, p = sps.norm.ppf(0.975), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@dataclass(frozen=True)
class Case:
    """A finding's effect on the run above: per seed (the two-seed run's value is their mean,
    with a t interval; the one-seed run's is seed 0's, with a bootstrap over ``questions``),
    ``bounds`` the interval is clipped to, and what its text must say (in full, or the part
    after the estimate it starts with)."""
    per_seed: tuple[float, ...]
    text: str = ""
    questions: int = 4
    bounds: tuple[float, float] = (-1.0, 1.0)


# Finding id -> its hand-checked case (slick-mix, descriptive: category_text below).
CASES = {
    # mix_60% (nearest 50 %, not 20 %): seed 0 Known (1 + 2/3)/2 - Unknown (1/3 + 0 + 2/3)/3
    # = 5/6 - 1/3 = 1/2; seed 1 (2/3 + 1/3)/2 - (0 + 0 + 1/3)/3 = 1/2 - 1/9 = 7/18. Over
    # both seeds a Known example is fitted at 8/3 / 4 = 67 % of epochs, an Unknown at 4/3 / 6 =
    # 22 %. One seed: unpaired bootstrap over seed 0's 2 Known (and 3 Unknown) examples.
    "fitted-slower": Case(
        (1 / 2, 7 / 18),
        "60% Unknown mix over epochs 1-3: a Known example is fitted at 67% of epochs, an "
        "Unknown one at 22%; difference ", questions=2),
    # CONVERGENCE, mix_100% - mix_0%: seed 0 .25 - .75, seed 1 .25 - .50 (q5 not paired);
    # EARLY_STOP (text): .25 - .50 and .50 - .75, the same -.25 for both seeds.
    "unknown-lowers-accuracy": Case(
        (-0.5, -0.25),
        "0% → 100% Unknown, change in test accuracy: CONVERGENCE -37.5 [-100.0, 100.0]; "
        "EARLY_STOP -25.0 [-25.0, -25.0]"),
    # gap (EARLY_STOP - CONVERGENCE) on the questions both mixes were asked: of mix_100%
    # 0, .25; of mix_0% -.25, .25; growth 0 - (-.25) = .25 and .25 - .25 = 0. A difference of
    # two gaps: clipped to [-2, 2]. The text's gap of each mix alone is over all the questions
    # that mix was asked: mix_100%'s five (q5 right at both checkpoints), 2/5 - 2/5 = 0 and
    # 3/5 - 2/5 = .2, so 10.0 there, not the 12.5 of q1-q4.
    "gap-grows": Case(
        (0.25, 0.0),
        "EARLY_STOP − CONVERGENCE gap 0.0 [-100.0, 100.0] at 0% Unknown, "
        "10.0 [-100.0, 100.0] at 100%; growth 12.5 [-146.3, 171.3]", bounds=(-2.0, 2.0)),
    # CONVERGENCE, filtered_20% - its D mix_20%: .75 - .50, 1.0 - .25; EARLY_STOP equal (0).
    "harmful-once-fitted": Case(
        (0.25, 0.75),
        "20% Unknown, D_Known − D: CONVERGENCE 50.0 [-100.0, 100.0]; "
        "EARLY_STOP 0.0 [0.0, 0.0]"),
    # the linear model's rows, read back (their interval: CLUSTERED below)
    "beta-unk": Case(
        (-0.06,), "-6.0 [-10.0, -2.0], p = 0.004, R² = 0.71 (60 points, 8 runs)"),
    "beta-kn": Case(
        (0.04,), "4.0 [-2.0, 10.0], p = 0.200, R² = 0.71 (60 points, 8 runs)"),
    "ood-beta-unk": Case(
        (-0.02,), "-2.0 [-5.0, 1.0], p = 0.180, R² = 0.40 (60 points, 8 runs)"),
    # EARLY_STOP: D_MaybeKnown minus the best other by mean, D_HighlyKnown: 1 - .75, .5 - .5
    "maybeknown-best": Case(
        (0.25, 0.0),
        "EARLY_STOP: D_MaybeKnown 75.0, D_HighlyKnown 62.5, D_Natural 50.0, D_WeaklyKnown "
        "37.5, D_Unknown 25.0; D_MaybeKnown − D_HighlyKnown 12.5 [-100.0, 100.0]"),
    # CONVERGENCE: D_Unknown minus the worst other, D_WeaklyKnown: 0 - .25, .5 - .5
    "unknown-worst": Case(
        (-0.25, 0.0),
        "CONVERGENCE: D_MaybeKnown 87.5, D_HighlyKnown 75.0, D_Natural 62.5, D_WeaklyKnown "
        "37.5, D_Unknown 25.0; D_Unknown − D_WeaklyKnown -12.5 [-100.0, 100.0]"),
    # CONVERGENCE: D_IDK right over answered minus D (mix_20%) over all: seed 0 2/3 - 2/4 =
    # 1/6, seed 1 1/1 - 1/4 = 3/4 (mean 11/24); D_IDK answers 4 of the 8 questions asked.
    "idk-helps": Case(
        (1 / 6, 3 / 4),
        "20% Unknown at CONVERGENCE: D_IDK accuracy on the 50% it answers minus D's "
        "accuracy 45.8 [-100.0, 100.0]"),
}
# The linear model's rows: clustered by 8 runs, so t with 7 degrees of freedom
CLUSTERED = {"beta-unk": (-0.06, -0.10, -0.02), "beta-kn": (0.04, -0.02, 0.10),
             "ood-beta-unk": (-0.02, -0.05, 0.01)}
# Finding id -> the baseline its scale divides by (0-1), on the two-seed run
BASELINES = {
    "unknown-lowers-accuracy": 0.30,     # in-distribution β0
    "beta-unk": 0.30,
    "beta-kn": 0.30,
    "ood-beta-unk": 0.10,                # OOD β0
    "maybeknown-best": 0.5,              # D_Natural at EARLY_STOP: (2 + 2) / 8
    "unknown-worst": 0.625,              # D_Natural at CONVERGENCE: (3 + 2) / 8
    "idk-helps": 0.375,                  # D = mix_20% at CONVERGENCE: (2 + 1) / 8
}
ALWAYS_MEASURED = {"slick-mix"}          # every profile labels its study set

# Profiles that run fewer sets: the findings each one leaves unmeasured (NOT_RUN); every other
# finding is still measured. (variants kept, coefficient rows kept, not run)
PROFILES = {
    "no mitigation sets": (
        tuple(v for v in VARIANTS if v not in ("filtered_20%", "idk_20%")), COEFFICIENTS,
        {"harmful-once-fitted", "idk-helps"}),
    # no mix between 0 % and 100 %: and the mitigation sets' 20 % mix is gone too
    "the end mixes only": (
        tuple(v for v in VARIANTS if v not in ("mix_20%", "mix_60%")), COEFFICIENTS,
        {"fitted-slower", "harmful-once-fitted", "idk-helps"}),
    "no D_Unknown": (tuple(v for v in VARIANTS if v != "pure_Unknown"), COEFFICIENTS,
                     {"unknown-worst"}),
    "one pure set": (
        tuple(v for v in VARIANTS if v not in PURE or v == "pure_MaybeKnown"), COEFFICIENTS,
        {"maybeknown-best", "unknown-worst"}),
    "no OOD model": (tuple(VARIANTS), [c for c in COEFFICIENTS if c[0] == ID],
                     {"ood-beta-unk"}),
    "beta_kn not estimated (NaN)": (
        tuple(VARIANTS),
        [(*c[:2], float("nan"), *c[3:]) if c[1] == "known_share" and c[0] == ID else c
         for c in COEFFICIENTS], {"beta-kn"}),
    "one mix, no linear model": (("mix_0%",), [], set(findings.IDS) - ALWAYS_MEASURED),
}


def test_every_finding_has_a_hand_checked_case():
    """A finding added to the registry without a case here fails (and a stale case too)."""
    ids = set(findings.IDS)
    assert set(CASES) | {"slick-mix"} == ids, "a finding without a hand-checked case"
    with_scale = {f.id for f in findings.FINDINGS if f.scale is not None}
    assert set(BASELINES) == with_scale, "a scale without a hand-checked baseline"
    not_run = set().union(*(p[2] for p in PROFILES.values()))
    assert not_run | ALWAYS_MEASURED == ids, "a finding no profile here leaves unmeasured"


def category_text() -> str:
    """slick-mix's text, worked out here: each category's share of the 20 questions with its
    Wilson interval, in whole points."""
    parts = []
    for category, k in SLICK.items():        # 5, 3, 2, 10 of 20
        low, high = wilson(k, 20)
        parts.append(f"{category} {100 * k / 20:.0f} [{100 * low:.0f}, {100 * high:.0f}]")
    return "; ".join(parts) + " % of 20 questions"


def test_the_category_shares_are_worked_out_by_hand():
    assert category_text().startswith("HighlyKnown 25 [11, 47]; MaybeKnown 15 [5, 36]; ")


@pytest.mark.parametrize("finding_id", findings.IDS)
def test_each_findings_measure_gives_the_hand_counted_effect(finding_id, two_seeds):
    text, est = findings.by_id(finding_id).ours(two_seeds)
    if finding_id == "slick-mix":            # descriptive: no effect, no verdict
        assert (text, est) == (category_text(), None)
        return
    if finding_id not in CASES:
        pytest.fail(f"finding {finding_id!r} has no hand-checked case in CASES")
    case = CASES[finding_id]
    if finding_id in CLUSTERED:
        value, low, high = CLUSTERED[finding_id]
        assert (est.value, est.low, est.high) == (value, low, high)
        assert est.method == "OLS clustered by 8 runs" and est.df == 7
        assert est.se == pytest.approx((high - low) / 2 / sps.t.ppf(0.975, 7))
    else:
        value, low, high = t95(case.per_seed, case.bounds)
        assert est.value == pytest.approx(value)
        assert (est.low, est.high) == (pytest.approx(low), pytest.approx(high))
        assert est.method == "t across 2 seeds" and est.df == 1
    assert est.low <= est.value <= est.high
    assert case.text in text


@pytest.mark.parametrize("finding_id", [i for i in findings.IDS
                                        if i not in CLUSTERED and i not in ALWAYS_MEASURED])
def test_with_one_seed_each_effect_is_seed_0s_with_a_bootstrap(finding_id, one_seed):
    """One seed: the effect is seed 0's, its interval a percentile bootstrap over the
    questions, around the effect and within its bounds. (idk-helps' statistic, right over
    answered, is 0/0 on a resample of only questions D_IDK abstained on: seed 0 abstains on
    one of four, so about 8 of the 2000 resamples.)"""
    case = CASES[finding_id]
    _, est = findings.by_id(finding_id).ours(one_seed)
    assert est.value == pytest.approx(case.per_seed[0])
    assert est.method == f"bootstrap over {case.questions} questions"
    assert case.bounds[0] <= est.low <= est.value <= est.high <= case.bounds[1]


@pytest.mark.parametrize("finding_id", sorted(BASELINES))
def test_each_scale_divides_by_the_hand_counted_baseline(finding_id, two_seeds):
    finding = findings.by_id(finding_id)
    assert finding.scale.ours(two_seeds) == pytest.approx(BASELINES[finding_id])
    assert finding.scaled(two_seeds) == pytest.approx(
        finding.paper_effect / finding.scale.paper * BASELINES[finding_id])


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_without_the_sets_leaves_just_those_findings_not_run(profile, tmp_path):
    variants, coefficients, not_run = PROFILES[profile]
    tables = measures.RunTables(write_run(tmp_path, variants=variants,
                                          coefficients=coefficients))
    answers = {f.id: f.ours(tables) for f in findings.FINDINGS}
    assert {i for i, a in answers.items() if a == measures.NOT_RUN} == not_run
    for i in not_run:
        assert answers[i] == ("not run in this profile", None)


def test_without_its_sets_no_baseline_and_no_scaled_effect(tmp_path):
    """The smallest profile: every scale's baseline is missing (KeyError), so no finding has
    the paper's effect on this model's scale."""
    variants, coefficients, _ = PROFILES["one mix, no linear model"]
    tables = measures.RunTables(write_run(tmp_path, variants=variants,
                                          coefficients=coefficients))
    for finding in findings.FINDINGS:
        if finding.scale is not None:
            with pytest.raises(KeyError):
                finding.scale.ours(tables)
        assert math.isnan(finding.scaled(tables))

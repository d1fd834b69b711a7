"""A small run made by hand, shared by the measures' tests (tests/study/test_measures.py) and
the findings pages' (tests/book/test_findings.py): four test questions per set and two
fine-tuning seeds, written to a run folder as the stages write them, so that every number a
measure gives can be worked out on paper."""

import numpy as np
import pandas as pd

from knowshift.core.files import write_parquet
from knowshift.core.layout import RunFolder

ES, CONV = "EARLY_STOP", "CONVERGENCE"
SEEDS = (0, 1)

# variant -> (kind, Unknown share, pure category)
VARIANTS = {
    "mix_0%": ("mix", 0.0, None), "mix_50%": ("mix", 0.5, None), "mix_100%": ("mix", 1.0, None),
    "filtered_50%": ("filtered", 0.5, None), "idk_50%": ("idk", 0.5, None),
    "pure_HighlyKnown": ("pure", np.nan, "HighlyKnown"),
    "pure_MaybeKnown": ("pure", np.nan, "MaybeKnown"),
    "pure_Unknown": ("pure", np.nan, "Unknown"), "pure_Natural": ("pure", np.nan, "Natural"),
}
EPOCH = {ES: 1, CONV: 2}

# (variant, checkpoint) -> per seed, whether test questions q0-q3 were answered right
TEST = {
    ("mix_0%", ES): ([1, 1, 1, 0], [1, 1, 0, 0]),            # .75, .50
    ("mix_0%", CONV): ([1, 1, 1, 0], [1, 1, 1, 0]),          # .75, .75
    ("mix_100%", ES): ([1, 0, 0, 0], [1, 1, 1, 0]),          # .25, .75
    ("mix_100%", CONV): ([0, 0, 0, 0], [1, 0, 0, 0]),        # .00, .25
    ("mix_50%", ES): ([1, 1, 0, 0], [1, 0, 0, 0]),
    ("mix_50%", CONV): ([1, 0, 0, 0], [1, 0, 0, 0]),         # .25, .25
    ("filtered_50%", ES): ([1, 1, 0, 0], [1, 0, 0, 0]),      # as D at EARLY_STOP
    ("filtered_50%", CONV): ([1, 1, 1, 0], [1, 1, 0, 0]),    # .75, .50
    ("idk_50%", ES): ([1, 1, 0, 0], [1, 0, 0, 0]),
    ("idk_50%", CONV): ([1, 1, 0, 0], [1, 0, 0, 0]),         # q2, q3 abstained (below)
    ("pure_HighlyKnown", ES): ([1, 1, 0, 0], [1, 0, 0, 0]),  # mean .375
    ("pure_MaybeKnown", ES): ([1, 1, 1, 0], [1, 1, 0, 0]),   # mean .625
    ("pure_Natural", ES): ([1, 1, 1, 0], [1, 0, 0, 0]),      # mean .5: the best other
    ("pure_Unknown", ES): ([1, 0, 0, 0], [0, 0, 0, 0]),      # mean .125
    ("pure_HighlyKnown", CONV): ([1, 1, 0, 0], [1, 1, 0, 0]),  # mean .5
    ("pure_MaybeKnown", CONV): ([1, 1, 1, 0], [1, 1, 1, 0]),   # mean .75
    ("pure_Natural", CONV): ([1, 0, 0, 0], [1, 1, 0, 0]),      # mean .375: the worst other
    ("pure_Unknown", CONV): ([0, 0, 0, 0], [1, 0, 0, 0]),      # mean .125
}
IDK_ABSTAINED = [0, 0, 1, 1]

# The 50 % mix's train examples t0, t1 (Known) and t2, t3 (Unknown), fitted or not at epochs 1-4
TRAIN = {0: {"t0": [0, 1, 1, 1], "t1": [1, 1, 1, 1], "t2": [0, 0, 0, 1], "t3": [0, 0, 0, 0]},
         1: {"t0": [0, 0, 1, 1], "t1": [0, 1, 1, 0], "t2": [0, 0, 0, 1], "t3": [0, 0, 1, 0]}}
KNOWN_TRAIN = {"t0", "t1"}

COEFFICIENTS = [
    {"model": "in-distribution", "term": "Intercept", "coef": 0.20, "ci_low": 0.15,
     "ci_high": 0.25, "p_value": 0.0, "r_squared": 0.86, "n": 90, "clusters": 15},
    {"model": "in-distribution", "term": "unknown_share", "coef": -0.083, "ci_low": -0.12,
     "ci_high": -0.046, "p_value": 0.012, "r_squared": 0.86, "n": 90, "clusters": 15},
    {"model": "in-distribution", "term": "known_share", "coef": 0.05, "ci_low": -0.01,
     "ci_high": 0.11, "p_value": 0.1, "r_squared": 0.86, "n": 90, "clusters": 15},
]
# 2 HighlyKnown, 1 MaybeKnown, 1 WeaklyKnown and 4 Unknown questions
CATEGORIES = ["HighlyKnown"] * 2 + ["MaybeKnown", "WeaklyKnown"] + ["Unknown"] * 4


def _rows():
    results, checkpoints = [], []
    for variant, (kind, share, category) in VARIANTS.items():
        for seed in SEEDS:
            for name, epoch in EPOCH.items():
                checkpoints.append({"seed": seed, "variant": variant, "checkpoint": name,
                                    "epoch": epoch, "kind": kind, "unknown_share": share,
                                    "category": category})
                for q, right in enumerate(TEST[variant, name][seed]):
                    results.append({"seed": seed, "variant": variant, "epoch": epoch,
                                    "set": "test", "id": f"q{q}", "correct": bool(right),
                                    "abstained": variant == "idk_50%" and bool(IDK_ABSTAINED[q]),
                                    "known": q < 2})
            # a question only the 100 % mix was asked: pairing must leave it out
            if variant == "mix_100%":
                results += [{"seed": seed, "variant": variant, "epoch": e, "set": "test",
                             "id": "q9", "correct": True, "abstained": False, "known": True}
                            for e in EPOCH.values()]
    for seed, examples in TRAIN.items():
        for ex, fitted in examples.items():
            results += [{"seed": seed, "variant": "mix_50%", "epoch": e + 1, "set": "train",
                         "id": ex, "correct": bool(c), "abstained": False,
                         "known": ex in KNOWN_TRAIN} for e, c in enumerate(fitted)]
    return pd.DataFrame(results), pd.DataFrame(checkpoints)


def write_run(root, results=None, checkpoints=None, coefficients=None, slick=None):
    """A run folder holding the four products the measures read."""
    made_results, made_checkpoints = _rows()
    run = RunFolder(root)
    products = {
        "results": made_results if results is None else results,
        "checkpoints": made_checkpoints if checkpoints is None else checkpoints,
        "coefficients": pd.DataFrame(COEFFICIENTS if coefficients is None else coefficients,
                                     columns=list(COEFFICIENTS[0])),
        "slick": slick if slick is not None else pd.DataFrame(
            {"id": [f"s{i}" for i in range(len(CATEGORIES))], "category": CATEGORIES}),
    }
    for name, table in products.items():
        write_parquet(table, run.path(name))
    return run.root



"""SliCK's categories read off results: how a labelled table divides among them
(:func:`category_mix`, for stage 2, the audit and the findings), and stage 6's analysis, which
knowledge category is worth fine-tuning on: test accuracy by the test questions' SliCK category
for each category-pure fine-tuning set (D_HighlyKnown, ..., D_Natural), at EARLY_STOP and
CONVERGENCE (the paper's Table 2), with 95 % intervals (:func:`knowshift.core.stats.estimate`:
across seeds, or a bootstrap over questions for one)."""

from __future__ import annotations

import pandas as pd

from ..core.files import write_parquet
from ..core.layout import RunFolder
from ..core.schema import CATEGORIES
from ..core.stats import estimate, mean, proportion
from .checkpoints import at_checkpoints

COLUMNS = ["train_set", "checkpoint", "epoch", "test_category", "accuracy", "low", "high", "n",
           "seeds"]


def category_mix(table: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Share of each SliCK category of a labelled table (a ``category`` column): overall, one
    row per category with ``n``, ``share`` and its Wilson 95 % interval ``low``/``high``; or per
    ``by`` (e.g. ``relation``), one row per group, a column per category's share and ``n``."""
    keys = [by] if by else []
    counts = (table.groupby(keys + ["category"], observed=False).size()
              if keys else table["category"].value_counts().reindex(CATEGORIES, fill_value=0))
    if not keys:
        shares = [proportion(int(n), int(counts.sum())) for n in counts]
        return pd.DataFrame({"n": counts, "share": counts / counts.sum(),
                             "low": [e.low for e in shares], "high": [e.high for e in shares]})
    wide = counts.unstack("category").reindex(columns=CATEGORIES, fill_value=0)
    return wide.div(wide.sum(axis=1), axis=0).assign(n=wide.sum(axis=1))


def accuracy_by_category(results: pd.DataFrame, checkpoints: pd.DataFrame,
                         test_set: str = "test") -> pd.DataFrame:
    """Long table: train set category, checkpoint, test category (plus ``All``), accuracy with
    ``low``/``high``, ``n`` questions, ``seeds`` and the mean checkpoint ``epoch`` (no rows
    when the profile runs no category-pure set)."""
    pure = checkpoints[checkpoints["kind"] == "pure"]
    test = results[results["set"] == test_set].drop(columns=["category"], errors="ignore")
    if "seed" not in test.columns:
        test, pure = test.assign(seed=0), pure.assign(seed=0)
    at = at_checkpoints(test, pure, ["checkpoint", "category"])
    rows = []
    for (category, checkpoint), cp in at.groupby(["category", "checkpoint"], sort=False):
        for test_category, group in [*cp.groupby("slick_category"), ("All", cp)]:
            per_seed = [(g["correct"].to_numpy(),) for _, g in group.groupby("seed")]
            est = estimate(per_seed, mean, bounds=(0.0, 1.0))
            rows.append({"train_set": f"D_{category}", "checkpoint": checkpoint,
                         "epoch": group.groupby("seed")["epoch"].first().mean(),
                         "test_category": test_category, "accuracy": est.value,
                         "low": est.low, "high": est.high,
                         "n": int(group.groupby("seed").size().iloc[0]),
                         "seeds": group["seed"].nunique()})
    return pd.DataFrame(rows, columns=COLUMNS)


def run_stage(run_dir, params, progress: bool = True) -> pd.DataFrame:
    """Stage 6: write the product ``accuracy_by_category``."""
    run = RunFolder(run_dir)
    table = accuracy_by_category(run.read("results"), run.read("checkpoints"))
    write_parquet(table, run.path("accuracy_by_category"))
    return table


# The paper's Table 2 (Gekhman et al., 2024, §5; PaLM 2-S): exact match (%) on the test
# questions of each category (and all of them), per category-pure fine-tuning set.
PAPER_TABLE_2 = {
    ("D_HighlyKnown", "EARLY_STOP"): (40.5, 98.7, 60.1, 9.0, 0.6),
    ("D_HighlyKnown", "CONVERGENCE"): (40.0, 98.4, 58.8, 8.5, 0.7),
    ("D_MaybeKnown", "EARLY_STOP"): (43.6, 98.4, 69.9, 12.1, 1.0),
    ("D_MaybeKnown", "CONVERGENCE"): (43.2, 97.5, 68.2, 12.9, 1.3),
    ("D_WeaklyKnown", "EARLY_STOP"): (39.2, 95.0, 59.2, 8.6, 0.4),
    ("D_WeaklyKnown", "CONVERGENCE"): (35.4, 73.5, 55.8, 17.2, 2.2),
    ("D_Unknown", "EARLY_STOP"): (37.5, 95.6, 52.9, 6.5, 0.6),
    ("D_Unknown", "CONVERGENCE"): (25.8, 55.8, 36.6, 12.2, 3.2),
    ("D_Natural", "EARLY_STOP"): (43.5, 98.0, 67.6, 14.1, 1.8),
    ("D_Natural", "CONVERGENCE"): (41.8, 95.5, 61.7, 14.8, 2.5),
}


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 in the long shape of :func:`accuracy_by_category` (accuracy 0-1)."""
    return pd.DataFrame([
        {"train_set": train_set, "checkpoint": checkpoint, "test_category": category,
         "accuracy": value / 100}
        for (train_set, checkpoint), values in PAPER_TABLE_2.items()
        for category, value in zip(["All", *CATEGORIES], values)])

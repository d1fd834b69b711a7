"""Stage 6 analysis: which knowledge category is worth fine-tuning on? Test accuracy by the
test questions' SliCK category for each category-pure fine-tuning set (D_HighlyKnown, ...,
D_Natural), at EARLY_STOP and CONVERGENCE (the paper's Table 2)."""

from __future__ import annotations

import pandas as pd

from .files import write_parquet
from .layout import RunFolder


def accuracy_by_category(results: pd.DataFrame, checkpoints: pd.DataFrame,
                         test_set: str = "test") -> pd.DataFrame:
    """Long table: train set category, checkpoint, test category (plus ``All``), accuracy, n."""
    pure = checkpoints[checkpoints["kind"] == "pure"]
    test = results[results["set"] == test_set]
    rows = []
    for _, cp in pure.iterrows():
        at = test[(test["variant"] == cp["variant"]) & (test["epoch"] == cp["epoch"])]
        for category, group in [*at.groupby("slick_category"), ("All", at)]:
            rows.append({"train_set": f"D_{cp['category']}", "checkpoint": cp["checkpoint"],
                         "epoch": cp["epoch"], "test_category": category,
                         "accuracy": group["correct"].mean(), "n": len(group)})
    return pd.DataFrame(rows)


def run_stage(run_dir) -> pd.DataFrame:
    """Stage 6: write the product ``accuracy_by_category``."""
    run = RunFolder(run_dir)
    table = accuracy_by_category(run.read("results"), run.read("checkpoints"))
    write_parquet(table, run.path("accuracy_by_category"))
    return table

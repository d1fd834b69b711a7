"""Stage 7 analysis: do the paper's mitigations help? The same mixes with Unknown examples
filtered out, or relabelled "I don't know" (IDK), against the plain ones, at EARLY_STOP and
CONVERGENCE. IDK answers are abstentions: we report accuracy on all questions, the answer rate
and accuracy on the answered ones."""

from __future__ import annotations

import pandas as pd

from .files import write_parquet
from .layout import RunFolder
from .scoring import summarize


def compare(results: pd.DataFrame, checkpoints: pd.DataFrame,
            sets: tuple[str, ...] = ("test", "ood")) -> pd.DataFrame:
    shares = checkpoints.loc[checkpoints["kind"].isin(["filtered", "idk"]), "unknown_share"]
    chosen = checkpoints[checkpoints["kind"].isin(["mix", "filtered", "idk"])
                         & checkpoints["unknown_share"].isin(set(shares))]
    rows = []
    for _, cp in chosen.iterrows():
        at = results[(results["variant"] == cp["variant"]) & (results["epoch"] == cp["epoch"])]
        for name in sets:
            stats = summarize(at[at["set"] == name])
            rows.append({"variant": cp["variant"], "kind": cp["kind"],
                         "unknown_share": cp["unknown_share"], "checkpoint": cp["checkpoint"],
                         "epoch": cp["epoch"], "set": name, **stats.to_dict()})
    return pd.DataFrame(rows)


def run_stage(run_dir) -> pd.DataFrame:
    """Stage 7: write the product ``mitigations``."""
    run = RunFolder(run_dir)
    table = compare(run.read("results"), run.read("checkpoints"))
    write_parquet(table, run.path("mitigations"))
    return table

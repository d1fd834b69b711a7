"""Stage 7 analysis: do the paper's mitigations help? The same mixes with Unknown examples
filtered out, or relabelled "I don't know" (IDK), against the plain ones, at EARLY_STOP and
CONVERGENCE. IDK answers are abstentions: we report accuracy on all questions, the answer rate
and accuracy on the answered ones, per seed and (:func:`summary`) as means over seeds with
95 % intervals."""

from __future__ import annotations

import pandas as pd

from ..core.files import write_parquet
from ..core.layout import RunFolder
from ..core.scoring import rates
from ..core.stats import over_seeds
from .checkpoints import EPOCH, at_checkpoints

METRICS = ("accuracy", "answer_rate", "accuracy_answered")
KEYS = ["seed", "variant", "kind", "unknown_share", "checkpoint", "epoch", "set"]


def compare(results: pd.DataFrame, checkpoints: pd.DataFrame,
            sets: tuple[str, ...] = ("test", "ood")) -> pd.DataFrame:
    """One row per seed, variant, checkpoint and test set, for the mixes that have a
    mitigation and their mitigations (no rows when the profile runs no mitigation)."""
    if "seed" not in checkpoints.columns:
        checkpoints, results = checkpoints.assign(seed=0), results.assign(seed=0)
    shares = checkpoints.loc[checkpoints["kind"].isin(["filtered", "idk"]), "unknown_share"]
    chosen = checkpoints[checkpoints["kind"].isin(["mix", "filtered", "idk"])
                         & checkpoints["unknown_share"].isin(set(shares))]
    at = at_checkpoints(results, chosen)
    answered, none = dict(list(at.groupby([*EPOCH, "set"], sort=False))), at.iloc[:0]
    rows = []
    for _, cp in chosen.iterrows():
        for name in sets:
            measured = rates(answered.get((cp["seed"], cp["variant"], cp["epoch"], name), none))
            rows.append({"seed": cp["seed"], "variant": cp["variant"], "kind": cp["kind"],
                         "unknown_share": cp["unknown_share"], "checkpoint": cp["checkpoint"],
                         "epoch": cp["epoch"], "set": name, **measured.to_dict()})
    return pd.DataFrame(rows, columns=[*KEYS, *METRICS, "n"])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Each metric's mean over seeds with its t interval (long: one row per metric)."""
    by = ["kind", "unknown_share", "checkpoint", "set"]
    if table.empty:
        return pd.DataFrame(columns=[*by, "value", "low", "high", "seeds", "metric"])
    return pd.concat([over_seeds(table, by, m).assign(metric=m) for m in METRICS],
                     ignore_index=True)


def run_stage(run_dir, params, progress: bool = True) -> pd.DataFrame:
    """Stage 7: write the product ``mitigations``."""
    run = RunFolder(run_dir)
    table = compare(run.read("results"), run.read("checkpoints"))
    write_parquet(table, run.path("mitigations"))
    return table

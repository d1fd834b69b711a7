"""Stage 4 analysis: training dynamics, i.e. how fast Known and Unknown fine-tuning examples
are fitted (the paper's Figure 3: Unknown examples are fitted much later)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .finetune import load_outputs
from .io import write_parquet


def fit_curves(results: pd.DataFrame, kind: str = "mix") -> pd.DataFrame:
    """Train accuracy per variant, epoch and subset (Known / Unknown) for ``kind`` variants."""
    train = results[(results["set"] == "train") & (results["kind"] == kind)]
    curves = (train.assign(subset=train["known"].map({True: "Known", False: "Unknown"}))
              .groupby(["variant", "unknown_share", "epoch", "subset"], as_index=False)
              ["correct"].mean().rename(columns={"correct": "train_accuracy"}))
    return curves


def epochs_to_fit(curves: pd.DataFrame, threshold: float = 0.9) -> pd.DataFrame:
    """First epoch at which each subset reaches ``threshold`` train accuracy (NaN: never)."""
    reached = curves[curves["train_accuracy"] >= threshold]
    first = reached.groupby(["variant", "unknown_share", "subset"])["epoch"].min()
    return first.unstack("subset").reindex(
        curves.groupby(["variant", "unknown_share"]).size().index).reset_index()


def run_stage(run_dir, threshold: float = 0.9) -> dict[str, pd.DataFrame]:
    """Stage 4: write ``dynamics/fit_curves.parquet`` and ``dynamics/epochs_to_fit.parquet``."""
    curves = fit_curves(load_outputs(run_dir)["results"])
    first = epochs_to_fit(curves, threshold)
    out = Path(run_dir) / "dynamics"
    write_parquet(curves, out / "fit_curves.parquet")
    write_parquet(first, out / "epochs_to_fit.parquet")
    return {"curves": curves, "epochs_to_fit": first}

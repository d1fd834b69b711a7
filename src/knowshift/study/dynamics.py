"""Stage 4 analysis: training dynamics, i.e. how fast Known and Unknown fine-tuning examples
are fitted (the paper's Figure 3: Unknown examples are fitted much later)."""

from __future__ import annotations

import pandas as pd

from ..core.files import write_parquet
from ..core.layout import RunFolder

FIT_THRESHOLD = 0.9     # a subset counts as fitted once this share of it is answered right
SUBSETS = ["Known", "Unknown"]


def fit_curves(results: pd.DataFrame, kind: str = "mix") -> pd.DataFrame:
    """Train accuracy per seed, variant, epoch and subset (Known / Unknown) for ``kind``
    variants."""
    train = results[(results["set"] == "train") & (results["kind"] == kind)]
    curves = (train.assign(subset=train["known"].map({True: "Known", False: "Unknown"}))
              .groupby(["seed", "variant", "unknown_share", "epoch", "subset"], as_index=False)
              ["correct"].mean().rename(columns={"correct": "train_accuracy"}))
    return curves


def epochs_to_fit(curves: pd.DataFrame, threshold: float = FIT_THRESHOLD) -> pd.DataFrame:
    """First epoch at which each subset reaches ``threshold`` train accuracy, per seed and
    variant (NaN: never, also when no subset of any run was fitted)."""
    run = ["seed", "variant", "unknown_share"]
    reached = curves[curves["train_accuracy"] >= threshold]
    first = reached.groupby([*run, "subset"])["epoch"].min().unstack("subset")
    first = first.reindex(index=curves.groupby(run).size().index, columns=SUBSETS)
    return first.rename_axis(columns="subset").reset_index()


def fitted_at_end(curves: pd.DataFrame, threshold: float = FIT_THRESHOLD) -> pd.DataFrame:
    """Per mix and subset, train accuracy at each run's last epoch (mean over seeds) and whether
    every seed had fitted it (at least ``threshold``): whether CONVERGENCE reads a fitted set,
    as the paper's does after 50 epochs."""
    last = curves[curves["epoch"] == curves.groupby(["seed", "variant"])["epoch"].transform("max")]
    return (last.groupby(["unknown_share", "subset"], as_index=False)
            .agg(epoch=("epoch", "max"), train_accuracy=("train_accuracy", "mean"),
                 fitted=("train_accuracy", lambda a: bool((a >= threshold).all()))))


def run_stage(run_dir, params, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Stage 4: write the products ``fit_curves`` and ``epochs_to_fit``."""
    run = RunFolder(run_dir)
    curves = fit_curves(run.read("results"))
    first = epochs_to_fit(curves)
    write_parquet(curves, run.path("fit_curves"))
    write_parquet(first, run.path("epochs_to_fit"))
    return {"curves": curves, "epochs_to_fit": first}

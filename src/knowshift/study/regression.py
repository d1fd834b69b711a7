"""Stage 5 analysis: the paper's linear model of test accuracy (Gekhman et al., 2024, eq. 1),

    accuracy = b0 + b_kn * N_kn / |D| + b_unk * N_unk / |D|,

where N_kn and N_unk are the Known and Unknown fine-tuning examples the model *fits* (answers
right) at a checkpoint. One point per (seed, mix, epoch); a run's epochs are not independent,
so standard errors are clustered by training run (seed x mix; :func:`knowshift.core.stats.
clustered_ols`). b_unk < 0 means that fitting Unknown examples costs accuracy."""

from __future__ import annotations

import pandas as pd

from ..core.files import write_parquet
from ..core.layout import RunFolder
from ..core.stats import clustered_ols

FORMULA = "accuracy ~ known_share + unknown_share"


def fit(points: pd.DataFrame, target: str = "test_accuracy"):
    """OLS of ``target`` on the fitted Known and Unknown shares (N_kn/|D|, N_unk/|D|), errors
    clustered by run (``seed`` x ``variant``; one cluster per point when those columns are
    absent); returns the statsmodels result."""
    run = (points["seed"].astype(str) + "/" + points["variant"].astype(str)
           if {"seed", "variant"} <= set(points.columns) else pd.Series(range(len(points))))
    data = pd.DataFrame({"accuracy": points[target].to_numpy(),
                         "known_share": points["fitted_known_share"].to_numpy(),
                         "unknown_share": points["fitted_unknown_share"].to_numpy(),
                         "run": run.to_numpy()}).dropna()
    return clustered_ols(data, FORMULA, "run")


def coefficient_table(results: dict[str, object]) -> pd.DataFrame:
    """Coefficients with 95 % CIs, p-values, R^2, points and clusters, one block per model."""
    rows = []
    for name, res in results.items():
        ci = res.conf_int()
        clusters = (int(res.cov_kwds["groups"].max() + 1)
                    if getattr(res, "cov_type", "") == "cluster" else int(res.nobs))
        for term in res.params.index:
            rows.append({"model": name, "term": term, "coef": res.params[term],
                         "ci_low": ci.loc[term, 0], "ci_high": ci.loc[term, 1],
                         "p_value": res.pvalues[term], "r_squared": res.rsquared,
                         "n": int(res.nobs), "clusters": clusters})
    return pd.DataFrame(rows)


def run_stage(run_dir, params, progress: bool = True) -> dict:
    """Stage 5: fit the model in- and out-of-distribution over every seed, mix and epoch;
    write the products ``points`` and ``coefficients``."""
    run = RunFolder(run_dir)
    metrics = run.read("metrics")
    points = metrics[metrics["kind"] == "mix"].reset_index(drop=True)
    fits = {"in-distribution": fit(points, "test_accuracy"),
            "out-of-distribution": fit(points, "ood_accuracy")}
    table = coefficient_table(fits)
    write_parquet(points, run.path("points"))
    write_parquet(table, run.path("coefficients"))
    return {"points": points, "fits": fits, "coefficients": table}

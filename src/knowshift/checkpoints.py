"""EARLY_STOP and CONVERGENCE, read from one run's per-epoch metrics.

EARLY_STOP is the epoch of best dev accuracy (the earliest on ties). CONVERGENCE is where the
model has fitted its fine-tuning set: the first epoch whose train accuracy is within
``tolerance`` of the best train accuracy of the run, i.e. where train accuracy stops rising."""

from __future__ import annotations

import pandas as pd


def early_stop_epoch(dev_accuracy: pd.Series) -> int:
    """``dev_accuracy`` indexed by epoch."""
    return int(dev_accuracy.idxmax())


def convergence_epoch(train_accuracy: pd.Series, tolerance: float = 0.01) -> int:
    """``train_accuracy`` indexed by epoch."""
    s = train_accuracy.sort_index()
    return int(s[s >= s.max() - tolerance].index[0])


def per_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per variant, epoch and set (train, dev, test, ood) as columns, plus answer
    rate and ``fitted_known_share`` / ``fitted_unknown_share``: the Known / Unknown examples of
    the fine-tuning set the model answers right, over |D| (N_kn/|D| and N_unk/|D|)."""
    acc = results.pivot_table(index=["variant", "epoch"], columns="set", values="correct",
                              aggfunc="mean")
    answered = results.assign(answered=~results["abstained"]).pivot_table(
        index=["variant", "epoch"], columns="set", values="answered", aggfunc="mean")
    train = results[results["set"] == "train"]
    size = train.groupby(["variant", "epoch"]).size()
    fitted = train[train["correct"].astype(bool)]
    known_fit = fitted[fitted["known"]].groupby(["variant", "epoch"]).size()
    unknown_fit = fitted[~fitted["known"]].groupby(["variant", "epoch"]).size()
    out = acc.add_suffix("_accuracy").join(answered.add_suffix("_answer_rate"))
    out["fitted_known_share"] = (known_fit.reindex(out.index, fill_value=0) / size).to_numpy()
    out["fitted_unknown_share"] = (unknown_fit.reindex(out.index, fill_value=0) / size).to_numpy()
    out.columns.name = None
    return out.reset_index()


def select(metrics: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """One row per variant and checkpoint (EARLY_STOP, CONVERGENCE) with its metrics."""
    rows = []
    for variant, m in metrics.groupby("variant", sort=False):
        m = m.set_index("epoch")
        for name, epoch in (("EARLY_STOP", early_stop_epoch(m["dev_accuracy"])),
                            ("CONVERGENCE", convergence_epoch(m["train_accuracy"], tolerance))):
            rows.append({"variant": variant, "checkpoint": name, "epoch": epoch,
                         **m.loc[epoch].to_dict()})
    return pd.DataFrame(rows)

"""EARLY_STOP and CONVERGENCE, read from one run's per-epoch metrics, per seed and variant.

EARLY_STOP is the epoch of best dev accuracy (the earliest on ties) and CONVERGENCE the last
epoch, as in the paper (§4: after 50 epochs, the train set fitted), by the rules of
:mod:`knowshift.study.finetune_schedule` that the run keeps its EARLY_STOP weights by.
CONVERGENCE counts as a real plateau (``converged``) when train accuracy has stayed within ``tolerance`` of its best for at least
:data:`PLATEAU_EPOCHS` epochs at the end of training."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.stats import estimate, mean
from .finetune_schedule import convergence_epoch, early_stop_epoch

RUN = ["seed", "variant"]       # one fine-tuning run
EPOCH = [*RUN, "epoch"]         # one evaluation of one run
PLATEAU_EPOCHS = 2
TOLERANCE = 0.025               # about one example of a 48-example set


def plateau_epochs(train_accuracy: pd.Series, tolerance: float = TOLERANCE) -> int:
    """How many epochs at the end of training have train accuracy within ``tolerance`` of the
    run's best."""
    s = train_accuracy.sort_index()
    near = (s >= s.max() - tolerance).to_numpy()[::-1]
    return int(near.argmin()) if not near.all() else len(near)


def per_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per seed, variant, epoch and set (train, dev, test, ood) as columns, plus answer
    rate and ``fitted_known_share`` / ``fitted_unknown_share``: the Known / Unknown examples of
    the fine-tuning set the model answers right, over |D| (N_kn/|D| and N_unk/|D|). A set not
    answered at an epoch (test sets of non-mix variants between checkpoints) is NaN there."""
    keys = [*RUN, "epoch"]
    acc = results.pivot_table(index=keys, columns="set", values="correct", aggfunc="mean")
    answered = results.assign(answered=~results["abstained"]).pivot_table(
        index=keys, columns="set", values="answered", aggfunc="mean")
    train = results[results["set"] == "train"]
    size = train.groupby(keys).size()
    fitted = train[train["correct"].astype(bool)]
    known_fit = fitted[fitted["known"]].groupby(keys).size()
    unknown_fit = fitted[~fitted["known"]].groupby(keys).size()
    out = acc.add_suffix("_accuracy").join(answered.add_suffix("_answer_rate"))
    out["fitted_known_share"] = (known_fit.reindex(out.index, fill_value=0)
                                 / size.reindex(out.index)).to_numpy()
    out["fitted_unknown_share"] = (unknown_fit.reindex(out.index, fill_value=0)
                                   / size.reindex(out.index)).to_numpy()
    out.columns.name = None
    return out.reset_index()


def select(metrics: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """One row per seed, variant and checkpoint (EARLY_STOP, CONVERGENCE) with its metrics and
    ``plateau_epochs`` / ``converged`` (see the module docstring)."""
    rows = []
    for (seed, variant), m in metrics.groupby(RUN, sort=False):
        m = m.set_index("epoch").sort_index()
        plateau = plateau_epochs(m["train_accuracy"], tolerance)
        for name, epoch in (("EARLY_STOP", early_stop_epoch(m["dev_accuracy"])),
                            ("CONVERGENCE", convergence_epoch(m["train_accuracy"]))):
            rows.append({"seed": seed, "variant": variant, "checkpoint": name, "epoch": epoch,
                         **m.loc[epoch].to_dict(), "plateau_epochs": plateau,
                         "converged": plateau >= PLATEAU_EPOCHS})
    return pd.DataFrame(rows)


def at_checkpoints(results: pd.DataFrame, checkpoints: pd.DataFrame,
                   columns: Sequence[str] = ()) -> pd.DataFrame:
    """The per-question rows of ``results`` at the epochs of ``checkpoints`` (joined on seed,
    variant and epoch, in the order of ``results``), with ``columns`` of the checkpoint rows
    (``checkpoint``, ``kind``, ...) in place of any ``results`` has. Without ``checkpoint``
    among them, checkpoints sharing an epoch give its rows once."""
    extra = [c for c in dict.fromkeys(columns) if c not in EPOCH]
    chosen = checkpoints[[*EPOCH, *extra]]
    if "checkpoint" not in extra:
        chosen = chosen.drop_duplicates()
    return results.drop(columns=[c for c in extra if c in results.columns]).merge(chosen, on=EPOCH)


def accuracy_table(results: pd.DataFrame, checkpoints: pd.DataFrame, by: list[str],
                   sets: Sequence[str] = ("test", "ood")) -> pd.DataFrame:
    """Accuracy at each checkpoint of each group of ``by`` (columns of ``checkpoints``) on each
    of ``sets``, with its interval by :func:`~knowshift.core.stats.estimate` (per-question rows
    of ``results``)."""
    at = at_checkpoints(results, checkpoints, [*by, "checkpoint"])
    rows = []
    for key, g in at[at["set"].isin(sets)].groupby([*by, "set"], sort=False, dropna=False):
        per_seed = [(s["correct"].to_numpy(),) for _, s in g.groupby("seed")]
        est = estimate(per_seed, mean, bounds=(0.0, 1.0))
        rows.append({**dict(zip([*by, "set"], key)), "accuracy": est.value, "low": est.low,
                     "high": est.high, "interval": est.method})
    return pd.DataFrame(rows)

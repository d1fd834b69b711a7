"""Intervals and verdicts: how sure a number is, and what it says about a finding.

One rule everywhere (book: method chapter, "How sure are the numbers"):

- **Across seeds.** Each fine-tuning seed replicates the fine-tuning study (sets, order,
  training). With two or more seeds a number is the mean of its per-seed values and its 95 %
  interval is Student's t interval across seeds (``scipy.stats.ttest_1samp``).
- **One run.** With one seed the interval is a percentile bootstrap over the test questions
  (``scipy.stats.bootstrap``), paired when two training sets are compared on the same questions.
- **The linear model** is fitted by OLS on every (seed, mix, epoch) point with standard errors
  clustered by training run (statsmodels ``cov_type="cluster"``), since a run's epochs are not
  independent.

A finding **agrees** when its interval excludes no effect on the paper's side, **disagrees**
when it excludes no effect on the other side, and is **inconclusive at this size** otherwise.
Pure numpy/scipy/statsmodels: the analysis stages never import torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
AGREES, INCONCLUSIVE, DISAGREES = "agrees", "inconclusive at this size", "disagrees"
VERDICTS = (AGREES, INCONCLUSIVE, DISAGREES)


@dataclass(frozen=True)
class Estimate:
    """A number with its 95 % interval and how the interval was made."""
    value: float
    low: float
    high: float
    method: str           # "t across N seeds", "bootstrap over N questions", "clustered OLS"

    def points(self, digits: int = 1) -> str:
        """``12.3 [8.1, 16.0]`` for a share or accuracy (0-1), in points."""
        if np.isnan(self.value):
            return "n/a"
        if np.isnan(self.low):
            return f"{100 * self.value:.{digits}f}"
        return (f"{100 * self.value:.{digits}f} [{100 * self.low:.{digits}f}, "
                f"{100 * self.high:.{digits}f}]")


NO_ESTIMATE = Estimate(float("nan"), float("nan"), float("nan"), "none")


def across_seeds(values: Sequence[float]) -> Estimate:
    """Mean and t interval of per-seed values (no interval from one value)."""
    v = np.asarray([x for x in values if not pd.isna(x)], dtype=float)
    if len(v) == 0:
        return NO_ESTIMATE
    if len(v) == 1:
        return Estimate(float(v[0]), float("nan"), float("nan"), "one seed")
    if np.ptp(v) == 0:
        return Estimate(float(v[0]), float(v[0]), float(v[0]), f"t across {len(v)} seeds")
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(CONFIDENCE)
    return Estimate(float(v.mean()), float(ci.low), float(ci.high),
                    f"t across {len(v)} seeds")


def bootstrap(samples: tuple[np.ndarray, ...], statistic: Callable, paired: bool = True,
              seed: int = 0) -> Estimate:
    """``statistic(*samples)`` with a percentile bootstrap interval over the samples' rows
    (``statistic`` takes ``axis``, as :func:`scipy.stats.bootstrap` asks of a vectorized one).
    Paired: the samples are columns of the same questions, resampled together."""
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    value = float(statistic(*samples, axis=-1))
    n = len(samples[0])
    if n < 2 or np.isnan(value):
        return Estimate(value, float("nan"), float("nan"), "one question")
    res = stats.bootstrap(samples, statistic, paired=paired, vectorized=True,
                          n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                          method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Estimate(value, float(ci.low), float(ci.high), f"bootstrap over {n} questions")


def estimate(per_seed: Sequence[tuple[np.ndarray, ...]], statistic: Callable,
             paired: bool = True, bounds: tuple[float, float] = (-1.0, 1.0)) -> Estimate:
    """The rule of this module: the per-seed values of ``statistic`` (one tuple of samples
    per seed) and their t interval; with one seed, the bootstrap over its samples. The
    interval is clipped to ``bounds``, the values the statistic can take (an accuracy lies in
    [0, 1], a difference of two in [-1, 1])."""
    per_seed = [s for s in per_seed if len(s[0])]
    if len(per_seed) == 1:
        est = bootstrap(per_seed[0], statistic, paired)
    else:
        est = across_seeds([float(statistic(*(np.asarray(x, dtype=float) for x in s),
                                            axis=-1)) for s in per_seed])
    return clip(est, *bounds)


def clip(est: Estimate, low: float, high: float) -> Estimate:
    """``est`` with its interval cut to [low, high]."""
    if np.isnan(est.low):
        return est
    return Estimate(est.value, max(est.low, low), min(est.high, high), est.method)


def mean(x, axis=-1):
    return np.mean(x, axis=axis)


def difference(a, b, axis=-1):
    """Mean of ``a`` minus mean of ``b``."""
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def answered_accuracy_gain(correct, answered, baseline, axis=-1):
    """Accuracy on answered questions (``correct`` over ``answered``) minus ``baseline``'s
    accuracy on all questions (the IDK mitigation)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.sum(correct, axis=axis) / np.sum(answered, axis=axis)
                - np.mean(baseline, axis=axis))


def verdict(est: Estimate, direction: int) -> str:
    """``agrees`` / ``inconclusive at this size`` / ``disagrees`` for an effect the paper found
    with sign ``direction`` (+1 or -1); ``-`` when there is no interval."""
    if np.isnan(est.low) or np.isnan(est.high):
        return "-"
    low, high = (est.low, est.high) if direction > 0 else (-est.high, -est.low)
    if low > 0:
        return AGREES
    if high < 0:
        return DISAGREES
    return INCONCLUSIVE


def clustered_ols(data: pd.DataFrame, formula: str, groups: str):
    """OLS of ``formula`` on ``data`` with standard errors clustered by the column ``groups``
    and t intervals with (clusters - 1) degrees of freedom, as few clusters need (plain OLS
    errors when there is one cluster)."""
    codes = pd.factorize(data[groups])[0]
    model = smf.ols(formula, data=data)
    if len(set(codes)) < 2:
        return model.fit()
    return model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)


def proportion(count: int, total: int) -> Estimate:
    """A share with its Wilson 95 % interval (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint
    if total == 0:
        return NO_ESTIMATE
    low, high = proportion_confint(count, total, alpha=1 - CONFIDENCE, method="wilson")
    return Estimate(count / total, float(low), float(high), f"Wilson, n = {total}")


def summarize(table: pd.DataFrame, by: list[str], value: str, seed: str = "seed",
              bounds: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """Per group of ``by``: the mean of a share ``value`` over seeds with its t interval
    (clipped to ``bounds``; columns ``value``, ``low``, ``high``, ``seeds``). For one seed see
    :func:`accuracy_table`."""
    rows = []
    for key, g in table.groupby(by, sort=False, dropna=False):
        est = clip(across_seeds(g.groupby(seed)[value].mean()), *bounds)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "value": est.value, "low": est.low,
                     "high": est.high, "seeds": g[seed].nunique()})
    return pd.DataFrame(rows)


def interval_table(table: pd.DataFrame, by: list[str], values: list[str],
                   seed: str = "seed") -> pd.DataFrame:
    """Each of ``values`` (shares) per group of ``by`` as text, ``mean [low, high]`` in points,
    the mean over seeds with its t interval: a table a reader can read intervals off."""
    cols = {v: summarize(table, by, v, seed) for v in values}
    out = cols[values[0]][by].copy()
    for v, t in cols.items():
        out[v] = [Estimate(a, lo, hi, "").points() for a, lo, hi in
                  zip(t["value"], t["low"], t["high"])]
    return out.set_index(by)


def accuracy_table(results: pd.DataFrame, checkpoints: pd.DataFrame, by: list[str],
                   sets: Sequence[str] = ("test", "ood")) -> pd.DataFrame:
    """Accuracy at each checkpoint of each group of ``by`` (columns of ``checkpoints``) on each
    of ``sets``, with its interval by :func:`estimate` (per-question rows of ``results``)."""
    keys = ["seed", "variant", "epoch"]
    extra = [c for c in dict.fromkeys([*by, "checkpoint"]) if c not in keys]
    at = results.drop(columns=[c for c in extra if c in results.columns]).merge(
        checkpoints[[*keys, *extra]], on=keys)
    rows = []
    for key, g in at[at["set"].isin(sets)].groupby([*by, "set"], sort=False, dropna=False):
        per_seed = [(s["correct"].to_numpy(),) for _, s in g.groupby("seed")]
        est = estimate(per_seed, mean, bounds=(0.0, 1.0))
        rows.append({**dict(zip([*by, "set"], key)), "accuracy": est.value, "low": est.low,
                     "high": est.high, "interval": est.method})
    return pd.DataFrame(rows)

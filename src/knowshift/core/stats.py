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
A second verdict reads the same interval against the paper's effect put on this model's scale
(:func:`size_verdict`), and :func:`detectable` gives the smallest effect the interval's own
standard error could have told from zero with 80 % power.
Pure numpy/scipy/statsmodels: the analysis stages never import torch."""

from __future__ import annotations

import warnings

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import optimize, stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
AGREES, INCONCLUSIVE, DISAGREES = "agrees", "inconclusive at this size", "disagrees"
VERDICTS = (AGREES, INCONCLUSIVE, DISAGREES)


@dataclass(frozen=True)
class Estimate:
    """A number with its 95 % interval and how the interval was made; ``se`` and ``df`` (the
    standard error and the t degrees of freedom behind the interval, ``inf`` for a normal
    one) say what effect the interval could have told from zero (:func:`detectable`)."""
    value: float
    low: float
    high: float
    method: str           # "t across N seeds", "bootstrap over N questions", "clustered OLS"
    se: float = float("nan")
    df: float = float("inf")

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
        return Estimate(float(v[0]), float(v[0]), float(v[0]), f"t across {len(v)} seeds",
                        0.0, len(v) - 1)
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(CONFIDENCE)
    return Estimate(float(v.mean()), float(ci.low), float(ci.high),
                    f"t across {len(v)} seeds", float(stats.sem(v)), len(v) - 1)


def bootstrap(samples: tuple[np.ndarray, ...], statistic: Callable, paired: bool = True,
              seed: int = 0) -> Estimate:
    """``statistic(*samples)`` with a percentile bootstrap interval over the samples' rows
    (``statistic`` takes ``axis``, as :func:`scipy.stats.bootstrap` asks of a vectorized one).
    Paired: the samples are columns of the same questions, resampled together. Resamples on
    which the statistic is undefined (an accuracy over answered questions, drawn where none was
    answered) are left out of the interval rather than making it undefined."""
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    value = float(statistic(*samples, axis=-1))
    n = len(samples[0])
    if n < 2 or np.isnan(value):
        return Estimate(value, float("nan"), float("nan"), "one question")
    with warnings.catch_warnings():     # an undefined interval is mended below
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(samples, statistic, paired=paired, vectorized=True,
                              n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                              method="percentile", rng=np.random.default_rng(seed))
    low, high, se = res.confidence_interval.low, res.confidence_interval.high, res.standard_error
    draws = np.asarray(res.bootstrap_distribution, dtype=float)
    if np.isnan(draws).any() and not np.isnan(draws).all():
        alpha = (1 - CONFIDENCE) / 2
        low, high = np.nanpercentile(draws, [100 * alpha, 100 * (1 - alpha)])
        se = np.nanstd(draws, ddof=1)
    return Estimate(value, float(low), float(high), f"bootstrap over {n} questions", float(se))


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
    return replace(est, low=max(est.low, low), high=min(est.high, high))


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


AS_LARGE, SMALLER, LARGER, UNDETERMINED = ("as large as the paper's", "smaller than the paper's",
                                           "larger than the paper's", "undetermined")
SIZE_VERDICTS = (AS_LARGE, SMALLER, LARGER, UNDETERMINED)
POWER = 0.8


def size_verdict(est: Estimate, target: float) -> str:
    """How our interval reads against ``target``, the paper's effect on this model's scale:
    *as large as the paper's* (excludes zero, includes the target), *smaller than the
    paper's* (excludes the target, on zero's side of it), *larger than the paper's* (excludes
    the target, beyond it) or *undetermined* (includes both); ``-`` without an interval or a
    target. Interval ends count as included."""
    if np.isnan(est.low) or np.isnan(est.high) or target is None or np.isnan(target):
        return "-"
    has_zero, has_target = est.low <= 0 <= est.high, est.low <= target <= est.high
    if has_target:
        return UNDETERMINED if has_zero else AS_LARGE
    toward_zero = est.high < target if target > 0 else est.low > target
    return SMALLER if toward_zero else LARGER


def t_critical(df: float) -> float:
    """The t quantile a two-sided 95 % interval uses (normal for ``df`` = inf)."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def detectable(est: Estimate, power: float = POWER) -> float:
    """The smallest effect that an interval made like ``est``'s (same standard error and
    degrees of freedom) excludes zero for, on the effect's side, with probability ``power``:
    the noncentral t (normal for ``df`` = inf) power of the verdict's rule. NaN without a
    standard error."""
    if np.isnan(est.se) or est.se <= 0:
        return float("nan")
    crit = t_critical(est.df)
    if np.isinf(est.df):
        return float((crit + stats.norm.ppf(power)) * est.se)
    shift = optimize.brentq(lambda nc: stats.nct.sf(crit, est.df, nc) - power, 0.0,
                            10 * crit + 10)
    return float(shift * est.se)


def replicates_needed(est: Estimate, replicates: int, target: float, power: float = POWER,
                      most: int = 200) -> int | None:
    """How many replicates (seeds, or clustered runs) an interval made like ``est``'s, which
    rests on ``replicates`` of them, needs to detect ``target`` with ``power``: the standard
    error shrinks as one over the root of their number, the degrees of freedom grow with it.
    None when more than ``most`` would be needed, or without a standard error."""
    if np.isnan(est.se) or est.se <= 0 or np.isnan(target) or target == 0:
        return None
    spread = est.se * np.sqrt(replicates)
    for n in range(2, most + 1):
        if detectable(replace(est, se=spread / np.sqrt(n), df=n - 1), power) <= abs(target):
            return n
    return None


def chance_verdicts(judged: int, agreeing: int) -> float:
    """The chance that at least ``agreeing`` of ``judged`` independent findings would
    *agree* (interval wholly on the paper's side of zero, a one-sided 2.5 % event for each)
    if none of the effects existed."""
    if judged == 0:
        return float("nan")
    return float(stats.binom.sf(agreeing - 1, judged, (1 - CONFIDENCE) / 2))


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


def over_seeds(table: pd.DataFrame, by: list[str], value: str, seed: str = "seed",
               bounds: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """Per group of ``by``: the mean of a share ``value`` over seeds with its t interval
    (clipped to ``bounds``; columns ``value``, ``low``, ``high``, ``seeds``). For one seed see
    :func:`knowshift.study.checkpoints.accuracy_table`."""
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
    cols = {v: over_seeds(table, by, v, seed) for v in values}
    out = cols[values[0]][by].copy()
    for v, t in cols.items():
        out[v] = [Estimate(a, lo, hi, "").points() for a, lo, hi in
                  zip(t["value"], t["low"], t["high"])]
    return out.set_index(by)

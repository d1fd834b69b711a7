"""The effect measures behind the paper's findings: each reads one run's result tables
(:class:`RunTables`) and gives the finding's number as text with its :class:`Estimate`, or a
baseline accuracy a finding's scaling rule divides by.

A measure is paired where the paper compares two training sets: per seed, on the test
questions both share, then averaged over seeds with its interval by :mod:`knowshift.core.stats`
(t across seeds; a bootstrap over questions for one seed; clustered OLS read back for the
linear model). The registry that names each finding and its measure is
:mod:`knowshift.study.findings`; the pages that show them are written by
:mod:`knowshift.book.findings`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core import stats
from ..core.layout import RunFolder
from ..core.stats import Estimate
from .categories import category_mix
from .checkpoints import at_checkpoints

# What a measure gives when this run's profile has no training sets for it.
NOT_RUN = ("not run in this profile", None)

Measured = tuple[str, Estimate | None]


class RunTables:
    """The result tables of one run folder (attribute -> product), read on first use."""

    PRODUCTS = {"slick": "slick", "results": "results", "checkpoints": "checkpoints",
                "coefficients": "coefficients"}

    def __init__(self, run_dir: str | Path):
        self.run = RunFolder(run_dir)
        for product in self.PRODUCTS.values():
            self.run.existing(product)
        self._cache: dict[str, pd.DataFrame] = {}

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name not in self.PRODUCTS:
            raise AttributeError(name)
        if name not in self._cache:
            self._cache[name] = self.run.read(self.PRODUCTS[name])
        return self._cache[name]

    def answers(self, variant: str, checkpoint: str, set_name: str = "test") -> pd.DataFrame:
        """Per-question rows of ``variant`` at ``checkpoint`` on ``set_name``, every seed
        (columns seed, id, correct, abstained, known, epoch)."""
        cp = self.checkpoints
        cp = cp[(cp["variant"] == variant) & (cp["checkpoint"] == checkpoint)]
        r = self.results
        r = r[(r["variant"] == variant) & (r["set"] == set_name)]
        return at_checkpoints(r, cp)[["seed", "id", "correct", "abstained", "known", "epoch"]]


def pts(x: float) -> str:
    """An accuracy (0-1) in points, as the paper reports it."""
    return "n/a" if pd.isna(x) else f"{100 * x:.1f}"


def paired(t: RunTables, columns: list[tuple[str, str, str]], set_name: str = "test"
           ) -> list[tuple[np.ndarray, ...]]:
    """Per seed, one array per (variant, checkpoint, field) over the questions all share
    (``field``: ``correct``, ``abstained`` or ``answered``)."""
    frames = [t.answers(v, cp, set_name).assign(answered=lambda d: ~d["abstained"])
              .set_index(["seed", "id"])[field].rename(i)
              for i, (v, cp, field) in enumerate(columns)]
    joined = pd.concat(frames, axis=1, join="inner").astype(float)
    return [tuple(g[i].to_numpy() for i in range(len(columns)))
            for _, g in joined.groupby(level="seed")]


def mix_variants(t: RunTables) -> pd.Series:
    """Mix variant names by their Unknown share (sorted)."""
    mix = t.checkpoints[t.checkpoints["kind"] == "mix"]
    return mix.groupby("unknown_share")["variant"].first().sort_index()


def category_shares(t: RunTables) -> Measured:
    """The SliCK category mix of the study set, each share with its Wilson interval
    (descriptive: no estimate)."""
    mix = category_mix(t.slick)
    parts = [f"{c} {Estimate(*mix.loc[c, ['share', 'low', 'high']], '').points(0)}"
             for c in ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")]
    return "; ".join(parts) + f" % of {len(t.slick)} questions", None


def fitted_slower(t: RunTables) -> Measured:
    """Each train example's share of epochs at which it was fitted, Known minus Unknown, in
    the mix nearest 50 % Unknown: the area between the two fitting curves over the whole run,
    per seed (not the EARLY_STOP epoch alone, which differs by seed)."""
    mixes = mix_variants(t)
    inner = mixes[(mixes.index > 0) & (mixes.index < 1)]
    if inner.empty:
        return NOT_RUN
    share = inner.index[np.abs(inner.index - 0.5).argmin()]
    r = t.results
    rows = r[(r["variant"] == inner[share]) & (r["set"] == "train")]
    fitted = rows.groupby(["seed", "id", "known"], as_index=False)["correct"].mean()
    per_seed = [(g.loc[g["known"], "correct"].to_numpy(),
                 g.loc[~g["known"], "correct"].to_numpy()) for _, g in fitted.groupby("seed")]
    est = stats.estimate(per_seed, stats.difference, paired=False)
    known = fitted.loc[fitted["known"], "correct"].mean()
    unknown = fitted.loc[~fitted["known"], "correct"].mean()
    return (f"{share:.0%} Unknown mix over epochs 1-{int(rows['epoch'].max())}: a Known example "
            f"is fitted at {known:.0%} of epochs, an Unknown one at {unknown:.0%}; difference "
            f"{est.points()}", est)


def accuracy_drops(t: RunTables) -> Measured:
    """Test accuracy of the highest Unknown share's mix minus the lowest's, paired per seed;
    the estimate is the CONVERGENCE one (EARLY_STOP is in the text)."""
    mixes = mix_variants(t)
    if len(mixes) < 2:
        return NOT_RUN
    lo, hi = mixes.iloc[0], mixes.iloc[-1]
    ests = {cp: stats.estimate(paired(t, [(hi, cp, "correct"), (lo, cp, "correct")]),
                               stats.difference) for cp in ("EARLY_STOP", "CONVERGENCE")}
    return (f"{mixes.index[0]:.0%} → {mixes.index[-1]:.0%} Unknown, change in test accuracy: "
            f"CONVERGENCE {ests['CONVERGENCE'].points()}; EARLY_STOP "
            f"{ests['EARLY_STOP'].points()}", ests["CONVERGENCE"])


def gap_growth(a_es, a_conv, b_es, b_conv, axis=-1):
    """(EARLY_STOP − CONVERGENCE accuracy of a) minus the same gap of b."""
    return (np.mean(a_es, axis=axis) - np.mean(a_conv, axis=axis)
            - np.mean(b_es, axis=axis) + np.mean(b_conv, axis=axis))


def overfitting_grows(t: RunTables) -> Measured:
    """The EARLY_STOP − CONVERGENCE gap of the highest Unknown share's mix minus the lowest's."""
    mixes = mix_variants(t)
    if len(mixes) < 2:
        return NOT_RUN
    lo, hi = mixes.iloc[0], mixes.iloc[-1]
    est = stats.estimate(paired(t, [(hi, "EARLY_STOP", "correct"),
                                    (hi, "CONVERGENCE", "correct"),
                                    (lo, "EARLY_STOP", "correct"),
                                    (lo, "CONVERGENCE", "correct")]), gap_growth,
                         bounds=(-2.0, 2.0))
    gaps = {v: stats.estimate(paired(t, [(v, "EARLY_STOP", "correct"),
                                         (v, "CONVERGENCE", "correct")]), stats.difference)
            for v in (lo, hi)}
    return (f"EARLY_STOP − CONVERGENCE gap {gaps[lo].points()} at {mixes.index[0]:.0%} "
            f"Unknown, {gaps[hi].points()} at {mixes.index[-1]:.0%}; growth {est.points()}",
            est)


def mitigation(t: RunTables, kind: str) -> tuple[str, str, float] | None:
    """(the mix D, its mitigated set of ``kind`` (``filtered``, ``idk``), the Unknown share),
    or None when the run has no such set or no mix of its share."""
    cp = t.checkpoints
    rows = cp[cp["kind"] == kind]
    if rows.empty:
        return None
    share = rows["unknown_share"].iloc[0]
    mix = cp[(cp["kind"] == "mix") & (cp["unknown_share"] == share)]
    if mix.empty:
        return None
    return mix["variant"].iloc[0], rows["variant"].iloc[0], share


def filtering(t: RunTables) -> Measured:
    """Test accuracy of D_Known (D with its Unknown examples dropped) minus D's, paired; the
    estimate is the CONVERGENCE one."""
    found = mitigation(t, "filtered")
    if found is None:
        return NOT_RUN
    mix, filtered, share = found
    ests = {cp: stats.estimate(paired(t, [(filtered, cp, "correct"), (mix, cp, "correct")]),
                               stats.difference) for cp in ("EARLY_STOP", "CONVERGENCE")}
    return (f"{share:.0%} Unknown, D_Known − D: CONVERGENCE {ests['CONVERGENCE'].points()}; "
            f"EARLY_STOP {ests['EARLY_STOP'].points()}", ests["CONVERGENCE"])


def coefficient_row(t: RunTables, model: str, term: str) -> pd.Series | None:
    """The row of ``term`` in the linear model ``model`` (None: not fitted)."""
    c = t.coefficients
    rows = c[(c["model"] == model) & (c["term"] == term)]
    return None if rows.empty or rows["coef"].isna().all() else rows.iloc[0]


def coefficient(model: str, term: str) -> Callable[[RunTables], Measured]:
    """A measure that reads back ``term`` of the linear model ``model`` with its clustered
    interval (the standard error recovered from the interval's half-width)."""
    def ours(t: RunTables) -> Measured:
        r = coefficient_row(t, model, term)
        if r is None:
            return NOT_RUN
        clusters = int(r["clusters"]) if "clusters" in r and not pd.isna(r["clusters"]) else 0
        df = max(clusters - 1, 1)
        se = (r["ci_high"] - r["ci_low"]) / (2 * stats.t_critical(df))
        est = Estimate(float(r["coef"]), float(r["ci_low"]), float(r["ci_high"]),
                       f"OLS clustered by {clusters} runs", float(se), df)
        p_value = "–" if pd.isna(r["p_value"]) else f"{r['p_value']:.3f}"
        r_squared = "–" if pd.isna(r["r_squared"]) else f"{r['r_squared']:.2f}"
        return (f"{est.points()}, p = {p_value}, R² = {r_squared} "
                f"({int(r['n'])} points, {clusters} runs)", est)
    return ours


def intercept(model: str) -> Callable[[RunTables], float]:
    """β0 of the linear model ``model``: the accuracy it gives a set with nothing fitted."""
    def ours(t: RunTables) -> float:
        r = coefficient_row(t, model, "Intercept")
        if r is None:
            raise KeyError(model)
        return float(r["coef"])
    return ours


def mitigated_mix_accuracy(checkpoint: str) -> Callable[[RunTables], float]:
    """Test accuracy at ``checkpoint`` of the mix D the IDK (or filtered) sets are made from."""
    def ours(t: RunTables) -> float:
        found = mitigation(t, "idk") or mitigation(t, "filtered")
        if found is None:
            raise KeyError("mitigation")
        return float(t.answers(found[0], checkpoint)["correct"].mean())
    return ours


def natural_accuracy(checkpoint: str) -> Callable[[RunTables], float]:
    """Test accuracy at ``checkpoint`` of D_Natural, the category-pure study's natural mix."""
    def ours(t: RunTables) -> float:
        return float(t.answers(pure_variants(t, checkpoint)["D_Natural"],
                               checkpoint)["correct"].mean())
    return ours


def pure_variants(t: RunTables, checkpoint: str) -> dict[str, str]:
    """The variant of each category-pure set read at ``checkpoint``, by its name D_<category>."""
    cp = t.checkpoints
    pure = cp[(cp["kind"] == "pure") & (cp["checkpoint"] == checkpoint)]
    return {f"D_{c}": v for c, v in pure.groupby("category")["variant"].first().items()}


def pure_estimates(t: RunTables, checkpoint: str) -> dict[str, float]:
    """Mean test accuracy over seeds of each category-pure set at ``checkpoint``."""
    return {name: t.answers(v, checkpoint)["correct"].mean()
            for name, v in pure_variants(t, checkpoint).items()}


def versus_others(t: RunTables, name: str, checkpoint: str, best: bool) -> Measured:
    """Test accuracy of the pure set ``name`` minus the best (``best``) or worst other pure set
    at ``checkpoint`` (chosen by mean accuracy), paired."""
    acc = pure_estimates(t, checkpoint)
    if name not in acc or len(acc) < 2:
        return NOT_RUN
    others = {k: v for k, v in acc.items() if k != name}
    rival = (max if best else min)(others, key=others.get)
    variant = pure_variants(t, checkpoint)
    est = stats.estimate(paired(t, [(variant[name], checkpoint, "correct"),
                                    (variant[rival], checkpoint, "correct")]),
                         stats.difference)
    ranking = ", ".join(f"{k} {pts(v)}" for k, v in sorted(acc.items(), key=lambda kv: -kv[1]))
    return f"{checkpoint}: {ranking}; {name} − {rival} {est.points()}", est


def idk(t: RunTables) -> Measured:
    """D_IDK's accuracy on the questions it answers minus D's accuracy on all, at
    CONVERGENCE, paired."""
    found = mitigation(t, "idk")
    if found is None:
        return NOT_RUN
    mix, relabelled, share = found
    cp = "CONVERGENCE"
    est = stats.estimate(paired(t, [(relabelled, cp, "correct"), (relabelled, cp, "answered"),
                                    (mix, cp, "correct")]), stats.answered_accuracy_gain)
    answered = t.answers(relabelled, cp)["abstained"].eq(False).mean()
    return (f"{share:.0%} Unknown at CONVERGENCE: D_IDK accuracy on the {answered:.0%} it "
            f"answers minus D's accuracy {est.points()}", est)

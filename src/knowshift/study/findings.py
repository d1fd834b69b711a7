"""Our results beside the paper's: each finding of Gekhman et al. (2024), the paper's number,
ours from one run folder with its 95 % interval, and a verdict from that interval.

The paper's numbers are quoted from its arXiv text (2405.05904): Table 1 (linear model), Table 2
(category-pure sets), Table 8 (IDK relabelling), §3 footnote 5 (category mix), §4.1-§4.3 and
appendix H. Each finding is measured as one effect whose sign the paper states (e.g. accuracy
at 100 % Unknown minus at 0 %), per seed and paired on the same questions, with its interval by
:mod:`knowshift.core.stats` (t across seeds; a bootstrap over questions for one seed; clustered OLS
for the linear model). The verdict is ``agrees``, ``inconclusive at this size`` or
``disagrees`` (:func:`knowshift.core.stats.verdict`), never a sign alone; ``-`` marks a descriptive
row or one this profile does not run."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core import stats
from ..core.layout import STAGE_NAMES, RunFolder
from ..core.params import shown_value
from ..core.stats import Estimate
from ..engine import host
from .categories import category_mix
from .checkpoints import at_checkpoints

NOT_RUN = ("not run in this profile", None)
STAGE_TITLES = {"slick": "SliCK", "finetune": "fine-tuning"}


@dataclass(frozen=True)
class Scale:
    """How the paper's effect is put on this model's scale: multiplied by the ratio of a
    baseline accuracy, ``ours(tables)`` (0-1) over the paper's ``paper`` (points, read where
    ``rule`` says)."""
    rule: str
    paper: float
    ours: Callable[["RunTables"], float]

    def ratio(self, tables: "RunTables") -> float:
        """Ours over the paper's; a baseline of zero or below has no scale to put an effect
        on (ValueError)."""
        ours = self.ours(tables)
        if not ours > 0:
            raise ValueError(f"baseline {ours}")
        return 100 * ours / self.paper


DIRECTION_ONLY = "direction only: the paper's text gives no number for it (its figures only)"


@dataclass(frozen=True)
class Finding:
    claim: str
    where: str
    paper: str
    paper_effect: float | None      # the paper's value of our effect, in points (None: not given)
    direction: int                  # the sign the paper found (+1 / -1; 0: descriptive)
    effect: str                     # what our number measures
    why: str
    ours: Callable[["RunTables"], tuple[str, Estimate | None]]
    scale: Scale | None = None      # None: the finding has a direction only

    def scaled(self, tables: "RunTables") -> float:
        """The paper's effect on this model's scale, in 0-1 units (NaN: direction only, or a
        baseline this run lacks)."""
        if self.paper_effect is None or self.scale is None:
            return float("nan")
        try:
            return self.paper_effect / 100 * self.scale.ratio(tables)
        except (KeyError, IndexError, ValueError):
            return float("nan")


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


def _paired(t: RunTables, columns: list[tuple[str, str, str]], set_name: str = "test"
            ) -> list[tuple[np.ndarray, ...]]:
    """Per seed, one array per (variant, checkpoint, field) over the questions all share."""
    frames = [t.answers(v, cp, set_name).assign(answered=lambda d: ~d["abstained"])
              .set_index(["seed", "id"])[field].rename(i)
              for i, (v, cp, field) in enumerate(columns)]
    joined = pd.concat(frames, axis=1, join="inner").astype(float)
    return [tuple(g[i].to_numpy() for i in range(len(columns)))
            for _, g in joined.groupby(level="seed")]


def _mix_variants(t: RunTables) -> pd.Series:
    """Mix variant names by their Unknown share (sorted)."""
    mix = t.checkpoints[t.checkpoints["kind"] == "mix"]
    return mix.groupby("unknown_share")["variant"].first().sort_index()


def _category_mix(t: RunTables):
    mix = category_mix(t.slick)
    parts = [f"{c} {Estimate(*mix.loc[c, ['share', 'low', 'high']], '').points(0)}"
             for c in ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")]
    return "; ".join(parts) + f" % of {len(t.slick)} questions", None


def _fitted_slower(t: RunTables):
    """Each train example's share of epochs at which it was fitted, Known minus Unknown, in
    the mix nearest 50 % Unknown: the area between the two fitting curves over the whole run,
    per seed (not the EARLY_STOP epoch alone, which differs by seed)."""
    mixes = _mix_variants(t)
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


def _accuracy_drops(t: RunTables):
    mixes = _mix_variants(t)
    if len(mixes) < 2:
        return NOT_RUN
    lo, hi = mixes.iloc[0], mixes.iloc[-1]
    ests = {cp: stats.estimate(_paired(t, [(hi, cp, "correct"), (lo, cp, "correct")]),
                               stats.difference) for cp in ("EARLY_STOP", "CONVERGENCE")}
    return (f"{mixes.index[0]:.0%} → {mixes.index[-1]:.0%} Unknown, change in test accuracy: "
            f"CONVERGENCE {ests['CONVERGENCE'].points()}; EARLY_STOP "
            f"{ests['EARLY_STOP'].points()}", ests["CONVERGENCE"])


def _gap_growth(a_es, a_conv, b_es, b_conv, axis=-1):
    return (np.mean(a_es, axis=axis) - np.mean(a_conv, axis=axis)
            - np.mean(b_es, axis=axis) + np.mean(b_conv, axis=axis))


def _overfitting_grows(t: RunTables):
    mixes = _mix_variants(t)
    if len(mixes) < 2:
        return NOT_RUN
    lo, hi = mixes.iloc[0], mixes.iloc[-1]
    est = stats.estimate(_paired(t, [(hi, "EARLY_STOP", "correct"),
                                     (hi, "CONVERGENCE", "correct"),
                                     (lo, "EARLY_STOP", "correct"),
                                     (lo, "CONVERGENCE", "correct")]), _gap_growth,
                         bounds=(-2.0, 2.0))
    gaps = {v: stats.estimate(_paired(t, [(v, "EARLY_STOP", "correct"),
                                          (v, "CONVERGENCE", "correct")]), stats.difference)
            for v in (lo, hi)}
    return (f"EARLY_STOP − CONVERGENCE gap {gaps[lo].points()} at {mixes.index[0]:.0%} "
            f"Unknown, {gaps[hi].points()} at {mixes.index[-1]:.0%}; growth {est.points()}",
            est)


def _mitigation(t: RunTables, kind: str) -> tuple[str, str, float] | None:
    cp = t.checkpoints
    rows = cp[cp["kind"] == kind]
    if rows.empty:
        return None
    share = rows["unknown_share"].iloc[0]
    mix = cp[(cp["kind"] == "mix") & (cp["unknown_share"] == share)]
    if mix.empty:
        return None
    return mix["variant"].iloc[0], rows["variant"].iloc[0], share


def _filtering(t: RunTables):
    found = _mitigation(t, "filtered")
    if found is None:
        return NOT_RUN
    mix, filtered, share = found
    ests = {cp: stats.estimate(_paired(t, [(filtered, cp, "correct"), (mix, cp, "correct")]),
                               stats.difference) for cp in ("EARLY_STOP", "CONVERGENCE")}
    return (f"{share:.0%} Unknown, D_Known − D: CONVERGENCE {ests['CONVERGENCE'].points()}; "
            f"EARLY_STOP {ests['EARLY_STOP'].points()}", ests["CONVERGENCE"])


def _coefficient_row(t: RunTables, model: str, term: str) -> pd.Series | None:
    c = t.coefficients
    rows = c[(c["model"] == model) & (c["term"] == term)]
    return None if rows.empty or rows["coef"].isna().all() else rows.iloc[0]


def _coefficient(model: str, term: str):
    def ours(t: RunTables):
        r = _coefficient_row(t, model, term)
        if r is None:
            return NOT_RUN
        clusters = int(r["clusters"]) if "clusters" in r and not pd.isna(r["clusters"]) else 0
        df = max(clusters - 1, 1)
        se = (r["ci_high"] - r["ci_low"]) / (2 * stats.t_critical(df))
        est = Estimate(float(r["coef"]), float(r["ci_low"]), float(r["ci_high"]),
                       f"OLS clustered by {clusters} runs", float(se), df)
        return (f"{est.points()}, p = {r['p_value']:.3f}, R² = {r['r_squared']:.2f} "
                f"({int(r['n'])} points, {clusters} runs)", est)
    return ours


def _intercept(model: str) -> Callable[[RunTables], float]:
    """β0 of the linear model ``model``: the accuracy it gives a set with nothing fitted."""
    def ours(t: RunTables) -> float:
        r = _coefficient_row(t, model, "Intercept")
        if r is None:
            raise KeyError(model)
        return float(r["coef"])
    return ours


def _mitigated_mix_accuracy(checkpoint: str) -> Callable[[RunTables], float]:
    """Test accuracy at ``checkpoint`` of the mix D the IDK (or filtered) sets are made from."""
    def ours(t: RunTables) -> float:
        found = _mitigation(t, "idk") or _mitigation(t, "filtered")
        if found is None:
            raise KeyError("mitigation")
        return float(t.answers(found[0], checkpoint)["correct"].mean())
    return ours


def _natural_accuracy(checkpoint: str) -> Callable[[RunTables], float]:
    """Test accuracy at ``checkpoint`` of D_Natural, the category-pure study's natural mix."""
    def ours(t: RunTables) -> float:
        return float(t.answers(_pure_variants(t, checkpoint)["D_Natural"],
                               checkpoint)["correct"].mean())
    return ours


def _pure_variants(t: RunTables, checkpoint: str) -> dict[str, str]:
    """The variant of each category-pure set read at ``checkpoint``, by its name D_<category>."""
    cp = t.checkpoints
    pure = cp[(cp["kind"] == "pure") & (cp["checkpoint"] == checkpoint)]
    return {f"D_{c}": v for c, v in pure.groupby("category")["variant"].first().items()}


def _pure_estimates(t: RunTables, checkpoint: str) -> dict[str, float]:
    """Mean test accuracy over seeds of each category-pure set at ``checkpoint``."""
    return {name: t.answers(v, checkpoint)["correct"].mean()
            for name, v in _pure_variants(t, checkpoint).items()}


def _versus_others(t: RunTables, name: str, checkpoint: str, best: bool):
    acc = _pure_estimates(t, checkpoint)
    if name not in acc or len(acc) < 2:
        return NOT_RUN
    others = {k: v for k, v in acc.items() if k != name}
    rival = (max if best else min)(others, key=others.get)
    variant = _pure_variants(t, checkpoint)
    est = stats.estimate(_paired(t, [(variant[name], checkpoint, "correct"),
                                     (variant[rival], checkpoint, "correct")]),
                         stats.difference)
    ranking = ", ".join(f"{k} {pts(v)}" for k, v in sorted(acc.items(), key=lambda kv: -kv[1]))
    return f"{checkpoint}: {ranking}; {name} − {rival} {est.points()}", est


def _idk(t: RunTables):
    found = _mitigation(t, "idk")
    if found is None:
        return NOT_RUN
    mix, idk, share = found
    cp = "CONVERGENCE"
    est = stats.estimate(_paired(t, [(idk, cp, "correct"), (idk, cp, "answered"),
                                     (mix, cp, "correct")]), stats.answered_accuracy_gain)
    answered = t.answers(idk, cp)["abstained"].eq(False).mean()
    return (f"{share:.0%} Unknown at CONVERGENCE: D_IDK accuracy on the {answered:.0%} it "
            f"answers minus D's accuracy {est.points()}", est)


# The paper's in-distribution accuracy effects are put on our scale by the ratio of the linear
# model's intercepts (β0: the accuracy with nothing fitted), since its text gives no measured
# accuracy at 0 % Unknown (Figure 3a only).
IN_DISTRIBUTION = Scale("times our in-distribution β0 over the paper's 36.9 (Table 1)", 36.9,
                        _intercept("in-distribution"))

FINDINGS = (
    Finding("SliCK category mix (HighlyKnown / MaybeKnown / WeaklyKnown / Unknown)",
            "§3, footnote 5", "24 / 23 / 17 / 36 % on EntityQuestions (PaLM 2-M)", None, 0,
            "shares of the study set's questions (Wilson intervals)",
            "A 135M model knows far fewer facts than PaLM 2-M, so Unknown dominates.",
            _category_mix),
    Finding("Unknown examples are fitted more slowly than Known ones", "§4.3, Figures 1 and 4",
            "at EARLY_STOP the model fits most Known examples but only a small fraction of "
            "the Unknown ones", None, +1,
            "share of epochs a Known train example is fitted at, minus an Unknown one's "
            "(the area between the fitting curves), in the mix nearest 50 % Unknown",
            "Small sets are memorised within a few epochs, so the lag is shorter.",
            _fitted_slower),
    Finding("A higher Unknown share lowers test accuracy", "§4.1, Figure 3a; appendix H",
            "lower at every fine-tuning duration; up to 14 points in-distribution", -14.0, -1,
            "test accuracy at 100 % minus at 0 % Unknown, CONVERGENCE",
            "A small model's test accuracy is low to begin with, so there is less to lose.",
            _accuracy_drops, IN_DISTRIBUTION),
    Finding("The overfitting gap (EARLY_STOP − CONVERGENCE) grows with the Unknown share",
            "§4.1, Figure 3a", "the gap increases monotonically with % Unknown", None, +1,
            "gap at 100 % minus gap at 0 % Unknown",
            "A few epochs leave little room for late overfitting; the gaps are a few questions.",
            _overfitting_grows),
    Finding("Unknown examples are harmful once fitted: D under-performs D_Known at "
            "CONVERGENCE", "§4.2, Figure 3b",
            "D ≈ D_Known at EARLY_STOP (neutral); D < D_Known at CONVERGENCE, by a gap "
            "proportional to % Unknown", None, +1,
            "test accuracy of D_Known minus D, CONVERGENCE",
            "D_Known is half the size of D here; a small model gains little from few examples.",
            _filtering),
    Finding("Fitting Unknown examples lowers accuracy (β_unk < 0), in-distribution",
            "§4.4, Table 1", "β_unk = −8.3 (β0 = 36.9, R² = 0.86)", -8.3, -1,
            "β_unk of the linear model",
            "Few mixes and epochs give few points and wide intervals.",
            _coefficient("in-distribution", "unknown_share"), IN_DISTRIBUTION),
    Finding("Fitting Known examples raises accuracy (β_kn > 0), in-distribution",
            "§4.4, Table 1", "β_kn = 7.3, so |β_unk| ≈ |β_kn|", 7.3, +1,
            "β_kn of the linear model",
            "Known examples of a 135M model are mostly weakly known; fitting them teaches "
            "the format more than it exposes knowledge.",
            _coefficient("in-distribution", "known_share"), IN_DISTRIBUTION),
    Finding("The harm transfers to held-out relations (OOD β_unk < 0)", "§4.5, Table 1; "
            "appendix H", "β_unk = −3.0, β_kn = 3.2, R² = 0.95; drops of up to 6 points", -3.0,
            -1, "β_unk of the linear model on OOD test questions",
            "The model knows few of the OOD questions, so there is little to lose.",
            _coefficient("out-of-distribution", "unknown_share"),
            Scale("times our OOD β0 over the paper's 36.2 (Table 1)", 36.2,
                  _intercept("out-of-distribution"))),
    Finding("D_MaybeKnown gives the best overall accuracy", "§5, Table 2",
            "EARLY_STOP: D_MaybeKnown 43.6, D_Natural 43.5, D_HighlyKnown 40.5, "
            "D_WeaklyKnown 39.2, D_Unknown 37.5", 0.1, +1,
            "test accuracy of D_MaybeKnown minus the best other pure set, EARLY_STOP",
            "What a small model 'maybe knows' is often a lucky guess.",
            lambda t: _versus_others(t, "D_MaybeKnown", "EARLY_STOP", best=True),
            Scale("times our D_Natural accuracy at EARLY_STOP over the paper's 43.5 "
                  "(Table 2)", 43.5, _natural_accuracy("EARLY_STOP"))),
    Finding("D_Unknown overfits most and is worst at CONVERGENCE", "§5, Table 2",
            "D_Unknown 37.5 → 25.8 from EARLY_STOP to CONVERGENCE, the lowest", -9.6, -1,
            "test accuracy of D_Unknown minus the worst other pure set, CONVERGENCE",
            "Few epochs and small sets.",
            lambda t: _versus_others(t, "D_Unknown", "CONVERGENCE", best=False),
            Scale("times our D_Natural accuracy at CONVERGENCE over the paper's 41.8 "
                  "(Table 2)", 41.8, _natural_accuracy("CONVERGENCE"))),
    Finding("Relabelling Unknown examples \"I don't know\" raises accuracy on answered "
            "questions", "§7, appendix K, Table 8",
            "50 % Unknown: D 43.0 / 38.8 (EARLY_STOP / CONVERGENCE, all answered); D_IDK "
            "61.8 / 61.8 on 58.7 / 55.6 % answered", 23.0, +1,
            "D_IDK accuracy on answered questions minus D accuracy, CONVERGENCE",
            "A small model abstains on most questions once it learns to; accuracy on the few "
            "answered ones is noisy.",
            _idk,
            Scale("times our D's accuracy at CONVERGENCE over the paper's 38.8 (Table 8)",
                  38.8, _mitigated_mix_accuracy("CONVERGENCE"))),
)


def compare(run_dir: str | Path) -> pd.DataFrame:
    """One row per finding: claim, section, the paper's number, ours (text), the effect we
    measure with its interval (``effect``/``low``/``high`` in 0-1 units, ``interval``: how it
    was made), the paper's value of that effect (points) and on this model's scale
    (``paper_scaled``, 0-1 units, by the finding's ``scale_rule``), the verdict on direction,
    the verdict on size, the smallest effect the interval could detect with 80 % power
    (``detectable``, 0-1 units), and why we may differ."""
    tables = RunTables(run_dir)
    rows = []
    for f in FINDINGS:
        ours, est = f.ours(tables)
        est = est or stats.NO_ESTIMATE
        scaled = f.scaled(tables) if f.direction else float("nan")
        rows.append({"finding": f.claim, "section": f.where, "paper": f.paper, "ours": ours,
                     "effect_measured": f.effect, "effect": est.value, "low": est.low,
                     "high": est.high, "interval": est.method,
                     "paper_effect": np.nan if f.paper_effect is None else f.paper_effect,
                     "scale_rule": ("-" if not f.direction else DIRECTION_ONLY
                                    if f.scale is None else f.scale.rule),
                     "paper_scaled": scaled,
                     "verdict": stats.verdict(est, f.direction) if f.direction else "-",
                     "size_verdict": stats.size_verdict(est, scaled) if f.direction else "-",
                     "detectable": stats.detectable(est) if f.direction else np.nan,
                     "se": est.se, "df": est.df,
                     "why it may differ": f.why})
    return pd.DataFrame(rows)


def power_markdown(table: pd.DataFrame, run_dir: str | Path) -> str:
    """What this run could see, finding by finding: the smallest detectable effect at its own
    variance, the paper's effect on our scale, and how many fine-tuning seeds (the test
    questions and |D| held as they are) would detect that scaled effect with 80 % power; for a
    one-seed run, how many test questions instead."""
    params = _run_params(run_dir)
    seeds = len(params.get("seeds") or [1])
    rows = []
    for i, r in enumerate(table.to_dict("records"), 1):
        if r["verdict"] == "-" and np.isnan(r["se"]):
            continue
        est = Estimate(r["effect"], r["low"], r["high"], r["interval"], r["se"], r["df"])
        if r["interval"].startswith("bootstrap over"):
            n = int(r["interval"].split()[2])
            times = (stats.detectable(est) / abs(r["paper_scaled"])) ** 2
            need = (f"{int(np.ceil(n * times))} test questions"
                    if np.isfinite(times) and r["paper_scaled"] else "-")
        else:
            clusters = r["df"] + 1 if np.isfinite(r["df"]) else seeds
            per_seed = clusters / seeds
            found = stats.replicates_needed(est, int(clusters), r["paper_scaled"])
            need = ("-" if np.isnan(r["paper_scaled"]) or np.isnan(r["se"]) else
                    "more than 200" if found is None else
                    f"{max(2, int(np.ceil(found / per_seed)))} seeds")
        rows.append({"#": i, "finding": r["finding"], "interval": r["interval"],
                     "detectable (80 % power)": "-" if np.isnan(r["detectable"])
                     else f"±{100 * r['detectable']:.1f}",
                     "paper's effect, our scale": _signed_points(r["paper_scaled"]),
                     "needed to detect it": need})
    return to_markdown(pd.DataFrame(rows, columns=[
        "#", "finding", "interval", "detectable (80 % power)", "paper's effect, our scale",
        "needed to detect it"]))


def rules_markdown() -> str:
    """The scaling rule of each judged finding, as the method chapter declares them."""
    shown = pd.DataFrame({
        "#": [i for i, f in enumerate(FINDINGS, 1) if f.direction],
        "finding": [f.claim for f in FINDINGS if f.direction],
        "the paper's effect": ["-" if f.paper_effect is None else f"{f.paper_effect:+.1f}"
                               for f in FINDINGS if f.direction],
        "on our scale": [DIRECTION_ONLY if f.scale is None else f.scale.rule
                         for f in FINDINGS if f.direction]})
    return to_markdown(shown)


def side_by_side(exploratory: pd.DataFrame, confirmatory: pd.DataFrame) -> str:
    """The two readings of one study, finding by finding: the exploratory one (whose verdicts
    were read before the rules were fixed) and the confirmatory replication on fresh seeds,
    each with its effect and both verdicts, and whether the verdict on direction held."""
    rows = []
    for i, (a, b) in enumerate(zip(exploratory.to_dict("records"),
                                   confirmatory.to_dict("records")), 1):
        if a["verdict"] == "-" and b["verdict"] == "-":
            continue
        held = ("held" if a["verdict"] == b["verdict"]
                else f"did not hold ({a['verdict']} → {b['verdict']})")
        if a["verdict"] == b["verdict"] and a["size_verdict"] != b["size_verdict"]:
            held += f"; size {a['size_verdict']} → {b['size_verdict']}"
        rows.append({"#": i, "finding": a["finding"],
                     "exploratory": _reading(a), "confirmatory": _reading(b), "held?": held})
    return to_markdown(pd.DataFrame(rows, columns=["#", "finding", "exploratory",
                                                   "confirmatory", "held?"]))


def _reading(row: dict) -> str:
    est = Estimate(row["effect"], row["low"], row["high"], row["interval"])
    size = "" if row["size_verdict"] == "-" else f"; {row['size_verdict']}"
    return f"{est.points()}: **{row['verdict']}**{size}"


def _signed_points(x: float) -> str:
    return "-" if pd.isna(x) else f"{100 * x:+.1f}"


def markdown(table: pd.DataFrame) -> str:
    """The comparison as the book shows it: a numbered table (finding and section, paper,
    ours, the verdict on direction, the paper's effect on this model's scale with the verdict
    on size, the smallest effect this run could detect), a line on how the findings read
    together, then what each effect measures and why a finding may differ."""
    shown = pd.DataFrame({
        "#": range(1, len(table) + 1),
        "finding": table["finding"] + " (" + table["section"] + ")",
        "paper": table["paper"], "ours": table["ours"],
        "direction": ["**" + v + "**" if v != "-" else v for v in table["verdict"]],
        "paper's effect, our scale": [_signed_points(x) for x in table["paper_scaled"]],
        "size": [v if v != "-" else ("direction only" if r == DIRECTION_ONLY else "-")
                 for v, r in zip(table["size_verdict"], table["scale_rule"])],
        "detectable (80 % power)": ["-" if pd.isna(x) else f"±{100 * x:.1f}"
                                    for x in table["detectable"]]})
    why = "\n".join(f"{i}. **{row['finding']}.** Measured as: {row['effect_measured']} "
                    f"({row['interval']}). The paper's effect on our scale: "
                    f"{row['scale_rule']}. {row['why it may differ']}"
                    for i, (_, row) in enumerate(table.iterrows(), 1))
    return (to_markdown(shown) + "\n\n" + together(table)
            + "\n\n## Finding by finding: what we measure, and why a small "
            "model may differ\n\n" + why)


def together(table: pd.DataFrame) -> str:
    """How the findings read together: with no effect anywhere, how likely as many would
    agree by chance (each a one-sided 2.5 % event; the findings share runs, so this is a
    guide, not a test)."""
    judged = table[table["verdict"] != "-"]
    if judged.empty:
        return "No finding could be judged in this run."
    agreeing = int((judged["verdict"] == stats.AGREES).sum())
    chance = stats.chance_verdicts(len(judged), agreeing)
    return (f"**Read together:** {agreeing} of {len(judged)} judged findings agree with the "
            f"paper. Were none of the effects real, at least {agreeing} would agree by chance "
            f"with probability {chance:.2g} (each interval excludes zero on the paper's side "
            f"2.5 % of the time; the findings share runs, so they are not independent and "
            f"this is a guide, not a test). Each verdict is read at 95 % on its own, without "
            f"adjustment for the {len(judged)} findings.")


def figure(table: pd.DataFrame):
    """Each finding's effect (points) with its 95 % interval, coloured by the verdict on
    direction, beside the paper's effect on this model's scale, with the verdict on size
    written at the right: the results page's opening figure."""
    import matplotlib.pyplot as plt

    colours = {stats.AGREES: "#1a9850", stats.INCONCLUSIVE: "#888888",
               stats.DISAGREES: "#d73027", "-": "#888888"}
    shown = table[table["verdict"] != "-"].reset_index()
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(shown) + 1.4))
    y = np.arange(len(shown))[::-1]
    for yi, (_, row) in zip(y, shown.iterrows()):
        c = colours[row["verdict"]]
        if not np.isnan(row["low"]):
            ax.plot([100 * row["low"], 100 * row["high"]], [yi, yi], color=c, lw=2.5)
        ax.plot(100 * row["effect"], yi, "o", color=c, ms=7)
        if not np.isnan(row["paper_scaled"]):
            ax.plot(100 * row["paper_scaled"], yi, "x", color="black", ms=8, mew=2)
        size = row["size_verdict"] if row["size_verdict"] != "-" else "direction only"
        ax.annotate(size, (1.01, yi), xycoords=("axes fraction", "data"), va="center",
                    fontsize=8)
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{i + 1}. {textwrap.shorten(row['effect_measured'], 80, placeholder='…')}"
                      for i, row in zip(shown["index"], shown.to_dict("records"))],
                  fontsize=8)
    ax.set_xlabel("effect (accuracy points; β in points per unit share)")
    handles = [plt.Line2D([], [], color=colours[v], marker="o", lw=2.5, label=v)
               for v in stats.VERDICTS]
    handles.append(plt.Line2D([], [], color="black", marker="x", lw=0, mew=2,
                              label="the paper's effect on our scale"))
    fig.legend(handles=handles, loc="lower left", fontsize=8, frameon=False, ncol=4)
    ax.set_title("Each finding: our effect with its 95 % interval (colour: direction), the "
                 "paper's effect on our scale, and the verdict on size (right)", fontsize=10,
                 loc="left")
    fig.tight_layout(rect=(0, 0.9 / (0.55 * len(shown) + 1.4), 1, 1))
    return fig


def _stamps(run: RunFolder) -> dict[str, dict]:
    """The stamp of each stage that has one."""
    return {name: record for name in STAGE_NAMES if (record := run.stamp_record(name))}


def build_summary(run_dir: str | Path) -> str:
    """A sentence on what built the run's numbers: precision and device, CPU and its flags,
    libraries and commit, for the stages that ran the model (one line when they agree)."""
    stamps = _stamps(RunFolder(run_dir))
    lines = {name: host.describe(stamps[name].get("built", {}))
             for name in ("slick", "finetune") if name in stamps}
    if not lines:
        return "**Built with:** not recorded."
    if len(set(lines.values())) == 1:
        return f"**Built with:** {next(iter(lines.values()))}."
    return "**Built with:** " + "; ".join(f"{STAGE_TITLES[n]}: {d}" for n, d in lines.items()
                                          ) + "."


# The paper's setup (§2-§4, appendices B, C and E), beside which a run's deviations are listed:
# (setting, the paper's, how this run's is shown from its parameters).
PAPER_SETUP = (
    ("model", "PaLM 2-M (not public)", lambda p: f"`{shown_value('model', p['model'])}`"),
    ("facts", "EntityQuestions: 12 in-distribution + 7 OOD relations",
     lambda p: f"{shown_value('facts', p['facts'])}: {len(p['relations'] or [])} relations"
     if p.get("relations") else f"{shown_value('facts', p['facts'])}: every relation"),
    ("SliCK exemplar sets", "10 random 4-shot sets from the dev split",
     lambda p: f"{p['n_exemplar_sets']} random {p['k_shot']}-shot sets from the "
               f"{p['exemplar_split']} split"),
    ("SliCK sampling", "16 samples at T = 0.5 among the top 40",
     lambda p: f"{p['n_samples']} samples at T = {p['temperature']} "
               + (f"among the top {p['top_k']}" if p["top_k"] else "from every token")),
    ("|D|", "6142", lambda p: str(p["d_size"])),
    ("Unknown shares", "0, 25, 50, 75, 100 %",
     lambda p: ", ".join(f"{100 * x:.0f}" for x in p["unknown_shares"]) + " %"),
    ("epochs (CONVERGENCE)", "50", lambda p: str(p["epochs"])),
    ("fine-tuning", "full, lr 1e-5, batch 128",
     lambda p: f"{p['method']}, lr {p['learning_rate']:g}, batch {p['ft_batch_size']}"
               + (f", LoRA r = {p['lora_r']}" if p["method"] == "lora" else "")),
    ("precision", "not stated", lambda p: str(p["precision"])),
    ("fine-tuning seeds", "one run per set (no seeds reported)",
     lambda p: f"{len(p['seeds'])}: {', '.join(map(str, p['seeds']))}"),
)


def _run_params(run_dir: str | Path) -> dict:
    params = {}
    for stamp in _stamps(RunFolder(run_dir)).values():
        params |= stamp.get("params", {})
    return params


def deviations(run_dir: str | Path) -> str:
    """Every setting of the paper's setup beside this run's (the precision as it ran)."""
    params = _run_params(run_dir)
    ran = _stamps(RunFolder(run_dir)).get("finetune", {}).get("built", {}).get("precision")
    if ran and ran != params.get("precision"):
        params["precision"] = f"{params.get('precision')} (ran as {ran})"
    rows = []
    for setting, paper, ours in PAPER_SETUP:
        try:
            value = ours(params)
        except KeyError:
            value = "?"
        rows.append({"setting": setting, "the paper": paper, "this run": value})
    return to_markdown(pd.DataFrame(rows))


def report(table: pd.DataFrame) -> str:
    """A summary in the shape of a reproducibility report: what was reproduced at what size,
    what held, what did not, and what stayed unsettled (with what this run could detect)."""
    judged = table[table["verdict"] != "-"].reset_index(drop=True)
    number = {f: i for i, f in enumerate(table["finding"], 1)}

    def listed(rows: pd.DataFrame, detail=None) -> str:
        if rows.empty:
            return "none"
        return "; ".join(f"{number[r['finding']]}. {r['finding']}"
                         + (f" ({detail(r)})" if detail else "") for _, r in rows.iterrows())

    def unsettled(r) -> str:
        scaled = "" if pd.isna(r["paper_scaled"]) else (
            f", the paper's effect on our scale {100 * r['paper_scaled']:+.1f}")
        return (f"detectable ±{100 * r['detectable']:.1f} points{scaled}"
                if not pd.isna(r["detectable"]) else "no standard error to size it")

    size = judged[judged["size_verdict"] != "-"]
    return "\n".join([
        f"- **Reproduced:** {len(judged)} findings of the paper, each as one effect with its "
        "95 % interval, on the run described above (see the deviations below).",
        f"- **Held** (agrees): {listed(judged[judged['verdict'] == stats.AGREES])}.",
        f"- **Did not hold** (disagrees): "
        f"{listed(judged[judged['verdict'] == stats.DISAGREES])}.",
        f"- **Unsettled** (inconclusive at this size): "
        f"{listed(judged[judged['verdict'] == stats.INCONCLUSIVE], unsettled)}.",
        "- **Size**, where the paper gives a number: "
        + ("; ".join(f"{number[r['finding']]}. {r['size_verdict']}"
                     for _, r in size.iterrows()) or "none") + "."])


def run_summary(run_dir: str | Path) -> str:
    """A sentence on the run: model, questions, fine-tuning size and epochs."""
    run = RunFolder(run_dir)
    params = _run_params(run_dir)
    slick = run.read("slick")
    test = slick[slick["split"] == "test"]
    return (f"**This run:** model `{shown_value('model', params.get('model', '?'))}`, "
            f"{len(slick)} questions over "
            f"{slick['relation'].nunique()} relations ({int((~test['ood']).sum())} "
            f"in-distribution and {int(test['ood'].sum())} OOD test questions), fine-tuning "
            f"sets of {params.get('d_size', '?')} examples, {params.get('epochs', '?')} epochs "
            f"of {params.get('method', '?')} fine-tuning, each trained once per fine-tuning "
            f"seed {params.get('seeds', '?')} (study seed {params.get('seed', '?')}).")


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table (cells escaped), for the book."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join(lines)

"""Our results beside the paper's: each finding of Gekhman et al. (2024), the paper's number,
ours from one run folder with its 95 % interval, and a verdict from that interval.

The paper's numbers are quoted from its arXiv text (2405.05904): Table 1 (linear model), Table 2
(category-pure sets), Table 8 (IDK relabelling), §3 footnote 5 (category mix), §4.1-§4.3 and
appendix H. Each finding is measured as one effect whose sign the paper states (e.g. accuracy
at 100 % Unknown minus at 0 %), per seed and paired on the same questions, with its interval by
:mod:`knowshift.stats` (t across seeds; a bootstrap over questions for one seed; clustered OLS
for the linear model). The verdict is ``agrees``, ``inconclusive at this size`` or
``disagrees`` (:func:`knowshift.stats.verdict`), never a sign alone; ``-`` marks a descriptive
row or one this profile does not run."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import stats
from .layout import STAGE_NAMES, RunFolder
from .params import shown_value
from .stats import Estimate

NOT_RUN = ("not run in this profile", None)


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


class RunTables:
    """The result tables of one run folder (attribute -> product), read on first use."""

    PRODUCTS = {"slick": "slick", "results": "results", "checkpoints": "checkpoints",
                "coefficients": "coefficients"}

    def __init__(self, run_dir: str | Path):
        self.run = RunFolder(run_dir)
        for product in self.PRODUCTS.values():
            self.run.require(product)
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
        return r.merge(cp[["seed", "epoch"]], on=["seed", "epoch"])[
            ["seed", "id", "correct", "abstained", "known", "epoch"]]


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
    counts = t.slick["category"].astype(str).value_counts()
    parts = [f"{c} {stats.proportion(int(counts.get(c, 0)), len(t.slick)).points(0)}"
             for c in ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")]
    return "; ".join(parts) + f" % of {len(t.slick)} questions", None


def _fitted_slower(t: RunTables):
    mixes = _mix_variants(t)
    inner = mixes[(mixes.index > 0) & (mixes.index < 1)]
    if inner.empty:
        return NOT_RUN
    share = inner.index[np.abs(inner.index - 0.5).argmin()]
    rows = t.answers(inner[share], "EARLY_STOP", "train")
    per_seed = [(g.loc[g["known"], "correct"].to_numpy(),
                 g.loc[~g["known"], "correct"].to_numpy()) for _, g in rows.groupby("seed")]
    est = stats.estimate(per_seed, stats.difference, paired=False)
    known = rows.loc[rows["known"], "correct"].mean()
    unknown = rows.loc[~rows["known"], "correct"].mean()
    return (f"{share:.0%} Unknown mix at EARLY_STOP (epoch {rows['epoch'].mean():.1f} on "
            f"average): fits {known:.0%} of Known vs {unknown:.0%} of Unknown examples; "
            f"difference {est.points()}", est)


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


def _coefficient(model: str, term: str):
    def ours(t: RunTables):
        c = t.coefficients
        rows = c[(c["model"] == model) & (c["term"] == term)]
        if rows.empty or rows["coef"].isna().all():
            return NOT_RUN
        r = rows.iloc[0]
        clusters = int(r["clusters"]) if "clusters" in r and not pd.isna(r["clusters"]) else 0
        est = Estimate(float(r["coef"]), float(r["ci_low"]), float(r["ci_high"]),
                       f"OLS clustered by {clusters} runs")
        return (f"{est.points()}, p = {r['p_value']:.3f}, R² = {r['r_squared']:.2f} "
                f"({int(r['n'])} points, {clusters} runs)", est)
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


FINDINGS = (
    Finding("SliCK category mix (HighlyKnown / MaybeKnown / WeaklyKnown / Unknown)",
            "§3, footnote 5", "24 / 23 / 17 / 36 % on EntityQuestions (PaLM 2-M)", None, 0,
            "shares of the study set's questions (Wilson intervals)",
            "A 135M model knows far fewer facts than PaLM 2-M, so Unknown dominates.",
            _category_mix),
    Finding("Unknown examples are fitted more slowly than Known ones", "§4.3, Figures 1 and 4",
            "at EARLY_STOP the model fits most Known examples but only a small fraction of "
            "the Unknown ones", None, +1,
            "share of Known minus share of Unknown train examples fitted at EARLY_STOP",
            "Small sets are memorised within a few epochs, so the lag is shorter.",
            _fitted_slower),
    Finding("A higher Unknown share lowers test accuracy", "§4.1, Figure 3a; appendix H",
            "lower at every fine-tuning duration; up to 14 points in-distribution", -14.0, -1,
            "test accuracy at 100 % minus at 0 % Unknown, CONVERGENCE",
            "A small model's test accuracy is low to begin with, so there is less to lose.",
            _accuracy_drops),
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
            _coefficient("in-distribution", "unknown_share")),
    Finding("Fitting Known examples raises accuracy (β_kn > 0), in-distribution",
            "§4.4, Table 1", "β_kn = 7.3, so |β_unk| ≈ |β_kn|", 7.3, +1,
            "β_kn of the linear model",
            "Known examples of a 135M model are mostly weakly known; fitting them teaches "
            "the format more than it exposes knowledge.",
            _coefficient("in-distribution", "known_share")),
    Finding("The harm transfers to held-out relations (OOD β_unk < 0)", "§4.5, Table 1; "
            "appendix H", "β_unk = −3.0, β_kn = 3.2, R² = 0.95; drops of up to 6 points", -3.0,
            -1, "β_unk of the linear model on OOD test questions",
            "The model knows few of the OOD questions, so there is little to lose.",
            _coefficient("out-of-distribution", "unknown_share")),
    Finding("D_MaybeKnown gives the best overall accuracy", "§5, Table 2",
            "EARLY_STOP: D_MaybeKnown 43.6, D_Natural 43.5, D_HighlyKnown 40.5, "
            "D_WeaklyKnown 39.2, D_Unknown 37.5", 0.1, +1,
            "test accuracy of D_MaybeKnown minus the best other pure set, EARLY_STOP",
            "What a small model 'maybe knows' is often a lucky guess.",
            lambda t: _versus_others(t, "D_MaybeKnown", "EARLY_STOP", best=True)),
    Finding("D_Unknown overfits most and is worst at CONVERGENCE", "§5, Table 2",
            "D_Unknown 37.5 → 25.8 from EARLY_STOP to CONVERGENCE, the lowest", -9.6, -1,
            "test accuracy of D_Unknown minus the worst other pure set, CONVERGENCE",
            "Few epochs and small sets.",
            lambda t: _versus_others(t, "D_Unknown", "CONVERGENCE", best=False)),
    Finding("Relabelling Unknown examples \"I don't know\" raises accuracy on answered "
            "questions", "§7, appendix K, Table 8",
            "50 % Unknown: D 43.0 / 38.8 (EARLY_STOP / CONVERGENCE, all answered); D_IDK "
            "61.8 / 61.8 on 58.7 / 55.6 % answered", 23.0, +1,
            "D_IDK accuracy on answered questions minus D accuracy, CONVERGENCE",
            "A small model abstains on most questions once it learns to; accuracy on the few "
            "answered ones is noisy.",
            _idk),
)


def compare(run_dir: str | Path) -> pd.DataFrame:
    """One row per finding: claim, section, the paper's number, ours (text), the effect we
    measure with its interval (``effect``/``low``/``high`` in 0-1 units, ``interval``: how it
    was made), the paper's value of that effect (points), the verdict, and why we may differ."""
    tables = RunTables(run_dir)
    rows = []
    for f in FINDINGS:
        ours, est = f.ours(tables)
        est = est or stats.NO_ESTIMATE
        rows.append({"finding": f.claim, "section": f.where, "paper": f.paper, "ours": ours,
                     "effect_measured": f.effect, "effect": est.value, "low": est.low,
                     "high": est.high, "interval": est.method,
                     "paper_effect": np.nan if f.paper_effect is None else f.paper_effect,
                     "verdict": stats.verdict(est, f.direction) if f.direction else "-",
                     "why it may differ": f.why})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The comparison as the book shows it: a numbered table (finding and section, paper,
    ours, verdict), then what each effect measures and why a finding may differ."""
    shown = pd.DataFrame({
        "#": range(1, len(table) + 1),
        "finding": table["finding"] + " (" + table["section"] + ")",
        "paper": table["paper"], "ours": table["ours"],
        "verdict": ["**" + v + "**" if v != "-" else v for v in table["verdict"]]})
    why = "\n".join(f"{i}. **{row['finding']}.** Measured as: {row['effect_measured']} "
                    f"({row['interval']}). {row['why it may differ']}"
                    for i, (_, row) in enumerate(table.iterrows(), 1))
    return (to_markdown(shown) + "\n\n## Finding by finding: what we measure, and why a small "
            "model may differ\n\n" + why)


def figure(table: pd.DataFrame):
    """Each finding's effect (points) with its 95 % interval, coloured by verdict, beside the
    paper's value where the paper gives one: the results page's opening figure."""
    import matplotlib.pyplot as plt

    colours = {stats.AGREES: "#1a9850", stats.INCONCLUSIVE: "#888888",
               stats.DISAGREES: "#d73027", "-": "#888888"}
    shown = table[table["verdict"] != "-"].reset_index()
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(shown) + 1.4))
    y = np.arange(len(shown))[::-1]
    for yi, (_, row) in zip(y, shown.iterrows()):
        c = colours[row["verdict"]]
        if not np.isnan(row["low"]):
            ax.plot([100 * row["low"], 100 * row["high"]], [yi, yi], color=c, lw=2.5)
        ax.plot(100 * row["effect"], yi, "o", color=c, ms=7)
        if not np.isnan(row["paper_effect"]):
            ax.plot(row["paper_effect"], yi, "x", color="black", ms=8, mew=2)
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{i + 1}. {textwrap.shorten(row['effect_measured'], 80, placeholder='…')}"
                      for i, row in zip(shown["index"], shown.to_dict("records"))],
                  fontsize=8)
    ax.set_xlabel("effect (accuracy points; β in points per unit share)")
    handles = [plt.Line2D([], [], color=colours[v], marker="o", lw=2.5, label=v)
               for v in stats.VERDICTS]
    handles.append(plt.Line2D([], [], color="black", marker="x", lw=0, mew=2,
                              label="the paper"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
              frameon=False)
    ax.set_title("Each finding: our effect with its 95 % interval, and the paper's value",
                 fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def run_summary(run_dir: str | Path) -> str:
    """A sentence on the run: model, questions, fine-tuning size and epochs."""
    run = RunFolder(run_dir)
    params = {}
    for name in STAGE_NAMES:
        if run.stamp(name).is_file():
            params |= json.loads(run.stamp(name).read_text()).get("params", {})
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

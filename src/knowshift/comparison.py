"""Our results beside the paper's: each finding of Gekhman et al. (2024), the paper's number,
ours from one run folder, whether the direction agrees, and why a small model may differ.

The paper's numbers are quoted from its arXiv text (2405.05904): Table 1 (linear model), Table 2
(category-pure sets), Table 8 (IDK relabelling), §3 footnote 5 (category mix), §4.1-§4.3 and
appendix H. ``agrees`` judges direction only: ``yes``, ``no``, ``direction only`` (same sign,
but the 95 % CI includes zero) or ``-`` (not run in this profile, or descriptive)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .layout import STAGE_NAMES, RunFolder

NOT_RUN = ("not run in this profile", "-")


@dataclass(frozen=True)
class Finding:
    claim: str
    where: str
    paper: str
    why: str
    ours: Callable[["RunTables"], tuple[str, str]]


class RunTables:
    """The result tables of one run folder (attribute -> product), read on first use."""

    PRODUCTS = {"slick": "slick", "checkpoints": "checkpoints",
                "coefficients": "coefficients", "categories": "accuracy_by_category",
                "mitigations": "mitigations"}

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


def pts(x: float) -> str:
    """An accuracy (0-1) in points, as the paper reports it."""
    return "n/a" if pd.isna(x) else f"{100 * x:.1f}"


def _mix_accuracy(t: RunTables, column: str = "test_accuracy") -> pd.DataFrame:
    cps = t.checkpoints[t.checkpoints["kind"] == "mix"]
    return cps.pivot_table(index="unknown_share", columns="checkpoint", values=column)


def _category_mix(t: RunTables):
    shares = t.slick["category"].value_counts(normalize=True)
    return (" / ".join(f"{100 * shares.get(c, 0):.0f} %" for c in
                       ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"))
            + f" of {len(t.slick)} questions", "-")


def _fitted_slower(t: RunTables):
    cps = t.checkpoints[(t.checkpoints["kind"] == "mix") & (t.checkpoints["unknown_share"] > 0)
                        & (t.checkpoints["unknown_share"] < 1)
                        & (t.checkpoints["checkpoint"] == "EARLY_STOP")]
    if cps.empty:
        return NOT_RUN
    cp = cps.iloc[(cps["unknown_share"] - 0.5).abs().argmin()]
    share = cp["unknown_share"]
    known = cp["fitted_known_share"] / (1 - share)
    unknown = cp["fitted_unknown_share"] / share
    return (f"at EARLY_STOP (epoch {int(cp['epoch'])}, {share:.0%} Unknown mix) the model fits "
            f"{known:.0%} of Known vs {unknown:.0%} of Unknown examples",
            "yes" if known > unknown else "no")


def _accuracy_drops(t: RunTables):
    acc = _mix_accuracy(t)
    if len(acc) < 2:
        return NOT_RUN
    lo, hi = acc.index.min(), acc.index.max()
    text = "; ".join(f"{cp} {pts(acc.loc[lo, cp])} → {pts(acc.loc[hi, cp])}"
                     for cp in ("EARLY_STOP", "CONVERGENCE"))
    drops = [acc.loc[hi, cp] < acc.loc[lo, cp] for cp in ("EARLY_STOP", "CONVERGENCE")]
    return (f"{lo:.0%} → {hi:.0%} Unknown: {text}",
            "yes" if all(drops) else "partly" if any(drops) else "no")


def _overfitting_grows(t: RunTables):
    acc = _mix_accuracy(t)
    if len(acc) < 2:
        return NOT_RUN
    gap = acc["EARLY_STOP"] - acc["CONVERGENCE"]
    lo, hi = acc.index.min(), acc.index.max()
    return (f"EARLY_STOP − CONVERGENCE gap {pts(gap[lo])} points at {lo:.0%} Unknown, "
            f"{pts(gap[hi])} at {hi:.0%}", "yes" if gap[hi] > gap[lo] else "no")


def _mitigation_rows(t: RunTables, kind: str) -> pd.DataFrame:
    m = t.mitigations[t.mitigations["set"] == "test"]
    shares = m.loc[m["kind"] == kind, "unknown_share"]
    if shares.empty:
        return m.iloc[:0]
    return m[m["unknown_share"] == shares.iloc[0]].set_index(["kind", "checkpoint"])


def _filtering(t: RunTables):
    m = _mitigation_rows(t, "filtered")
    if m.empty or ("mix", "CONVERGENCE") not in m.index:
        return NOT_RUN
    share = m["unknown_share"].iloc[0]
    acc = m["accuracy"]
    return (f"{share:.0%} Unknown: D {pts(acc['mix', 'EARLY_STOP'])} / "
            f"{pts(acc['mix', 'CONVERGENCE'])}, D_Known {pts(acc['filtered', 'EARLY_STOP'])} / "
            f"{pts(acc['filtered', 'CONVERGENCE'])} (EARLY_STOP / CONVERGENCE)",
            "yes" if acc["filtered", "CONVERGENCE"] > acc["mix", "CONVERGENCE"] else "no")


def _coefficient(model: str, term: str, sign: int):
    def ours(t: RunTables):
        c = t.coefficients
        rows = c[(c["model"] == model) & (c["term"] == term)]
        if rows.empty or rows["coef"].isna().all():
            return NOT_RUN
        r = rows.iloc[0]
        text = (f"{100 * r['coef']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}], "
                f"p = {r['p_value']:.3f}, R² = {r['r_squared']:.2f} ({int(r['n'])} points)")
        if (r["ci_high"] < 0) if sign < 0 else (r["ci_low"] > 0):
            verdict = "yes"
        elif sign * r["coef"] > 0:
            verdict = "direction only"
        else:
            verdict = "no"
        return text, verdict
    return ours


def _pure_ranking(t: RunTables, checkpoint: str) -> pd.Series:
    c = t.categories
    return (c[(c["checkpoint"] == checkpoint) & (c["test_category"] == "All")]
            .set_index("train_set")["accuracy"].sort_values(ascending=False))


def _maybeknown_best(t: RunTables):
    rank = _pure_ranking(t, "EARLY_STOP")
    if "D_MaybeKnown" not in rank.index or len(rank) < 2:
        return NOT_RUN
    text = "EARLY_STOP: " + ", ".join(f"{k} {pts(v)}" for k, v in rank.items())
    return text, "yes" if rank.index[0] == "D_MaybeKnown" else "no"


def _unknown_worst(t: RunTables):
    es, conv = _pure_ranking(t, "EARLY_STOP"), _pure_ranking(t, "CONVERGENCE")
    if "D_Unknown" not in conv.index or len(conv) < 2:
        return NOT_RUN
    text = (f"D_Unknown {pts(es['D_Unknown'])} → {pts(conv['D_Unknown'])}; at CONVERGENCE: "
            + ", ".join(f"{k} {pts(v)}" for k, v in conv.items()))
    return text, "yes" if conv.index[-1] == "D_Unknown" else "no"


def _idk(t: RunTables):
    m = _mitigation_rows(t, "idk")
    if m.empty or ("mix", "CONVERGENCE") not in m.index:
        return NOT_RUN
    share = m["unknown_share"].iloc[0]
    cps = ("EARLY_STOP", "CONVERGENCE")
    text = (f"{share:.0%} Unknown: D {pts(m.loc[('mix', cps[0]), 'accuracy'])} / "
            f"{pts(m.loc[('mix', cps[1]), 'accuracy'])}; D_IDK "
            f"{pts(m.loc[('idk', cps[0]), 'accuracy_answered'])} / "
            f"{pts(m.loc[('idk', cps[1]), 'accuracy_answered'])} on "
            f"{m.loc[('idk', cps[0]), 'answer_rate']:.0%} / "
            f"{m.loc[('idk', cps[1]), 'answer_rate']:.0%} answered")
    better = [m.loc[("idk", cp), "accuracy_answered"] > m.loc[("mix", cp), "accuracy"]
              for cp in cps]
    return text, "yes" if all(better) else "partly" if any(better) else "no"


FINDINGS = (
    Finding("SliCK category mix (HighlyKnown / MaybeKnown / WeaklyKnown / Unknown)",
            "§3, footnote 5", "24 / 23 / 17 / 36 % on EntityQuestions (PaLM 2-M)",
            "A 135M model knows far fewer facts than PaLM 2-M, so Unknown dominates.",
            _category_mix),
    Finding("Unknown examples are fitted more slowly than Known ones", "§4.3, Figures 1 and 4",
            "at EARLY_STOP the model fits most Known examples but only a small fraction of "
            "the Unknown ones",
            "Small sets are memorised within a few epochs, so the lag is shorter.",
            _fitted_slower),
    Finding("A higher Unknown share lowers test accuracy", "§4.1, Figure 3a; appendix H",
            "lower at every fine-tuning duration; up to 14 points in-distribution",
            "About a hundred test questions: one question is about a point.",
            _accuracy_drops),
    Finding("The overfitting gap (EARLY_STOP − CONVERGENCE) grows with the Unknown share",
            "§4.1, Figure 3a", "the gap increases monotonically with % Unknown",
            "Five epochs leave little room for late overfitting; the gaps are a few questions.",
            _overfitting_grows),
    Finding("Unknown examples are harmful once fitted: D under-performs D_Known at "
            "CONVERGENCE", "§4.2, Figure 3b",
            "D ≈ D_Known at EARLY_STOP (neutral); D < D_Known at CONVERGENCE, by a gap "
            "proportional to % Unknown",
            "D_Known is half the size of D here; a small model gains little from few examples.",
            _filtering),
    Finding("Fitting Unknown examples lowers accuracy (β_unk < 0), in-distribution",
            "§4.4, Table 1", "β_unk = −8.3 (β0 = 36.9, R² = 0.86)",
            "Few mixes and epochs give few points and wide intervals.",
            _coefficient("in-distribution", "unknown_share", -1)),
    Finding("Fitting Known examples raises accuracy (β_kn > 0), in-distribution",
            "§4.4, Table 1", "β_kn = 7.3, so |β_unk| ≈ |β_kn|",
            "Known examples of a 135M model are mostly weakly known; fitting them teaches "
            "the format more than it exposes knowledge.",
            _coefficient("in-distribution", "known_share", +1)),
    Finding("The harm transfers to held-out relations (OOD β_unk < 0)", "§4.5, Table 1; "
            "appendix H", "β_unk = −3.0, β_kn = 3.2, R² = 0.95; drops of up to 6 points",
            "The OOD test set is small and the model knows almost none of it.",
            _coefficient("out-of-distribution", "unknown_share", -1)),
    Finding("D_MaybeKnown gives the best overall accuracy", "§5, Table 2",
            "EARLY_STOP: D_MaybeKnown 43.6, D_Natural 43.5, D_HighlyKnown 40.5, "
            "D_WeaklyKnown 39.2, D_Unknown 37.5",
            "Category-pure sets are small, and what a small model 'maybe knows' is often a "
            "lucky guess.",
            _maybeknown_best),
    Finding("D_Unknown overfits most and is worst at CONVERGENCE", "§5, Table 2",
            "D_Unknown 37.5 → 25.8 from EARLY_STOP to CONVERGENCE, the lowest",
            "Few epochs and a small test set.", _unknown_worst),
    Finding("Relabelling Unknown examples \"I don't know\" raises accuracy on answered "
            "questions", "§7, appendix K, Table 8",
            "50 % Unknown: D 43.0 / 38.8 (EARLY_STOP / CONVERGENCE, all answered); D_IDK "
            "61.8 / 61.8 on 58.7 / 55.6 % answered",
            "A small model abstains on most questions once it learns to; accuracy on the few "
            "answered ones is noisy.",
            _idk),
)


def compare(run_dir: str | Path) -> pd.DataFrame:
    """One row per finding: claim, where in the paper, the paper's number, ours, agrees, why."""
    tables = RunTables(run_dir)
    rows = []
    for f in FINDINGS:
        ours, agrees = f.ours(tables)
        rows.append({"finding": f.claim, "section": f.where, "paper": f.paper,
                     "ours": ours, "agrees": agrees, "why it may differ": f.why})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The comparison as the book shows it: a numbered table (finding and section, paper,
    ours, agrees) and, below it, why each finding may differ."""
    shown = pd.DataFrame({
        "#": range(1, len(table) + 1),
        "finding": table["finding"] + " (" + table["section"] + ")",
        "paper": table["paper"], "ours": table["ours"], "agrees": table["agrees"]})
    why = "\n".join(f"{i}. **{row['finding']}.** {row['why it may differ']}"
                    for i, (_, row) in enumerate(table.iterrows(), 1))
    return (to_markdown(shown) + "\n\n## Finding by finding: why a small model may differ\n\n"
            + why)


def run_summary(run_dir: str | Path) -> str:
    """A sentence on the run: model, questions, fine-tuning size and epochs."""
    run = RunFolder(run_dir)
    params = {}
    for name in STAGE_NAMES:
        if run.stamp(name).is_file():
            params |= json.loads(run.stamp(name).read_text()).get("params", {})
    slick = run.read("slick")
    test = slick[slick["split"] == "test"]
    return (f"**This run:** model `{params.get('model', '?')}`, {len(slick)} questions over "
            f"{slick['relation'].nunique()} relations ({int((~test['ood']).sum())} "
            f"in-distribution and {int(test['ood'].sum())} OOD test questions), fine-tuning "
            f"sets of {params.get('d_size', '?')} examples, {params.get('epochs', '?')} epochs "
            f"of {params.get('method', '?')} fine-tuning, seed {params.get('seed', '?')}.")


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table (cells escaped), for the book."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join(lines)

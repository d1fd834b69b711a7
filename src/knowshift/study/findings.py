"""The paper's findings, one registry: each finding of Gekhman et al. (2024) with its stable
id, the paper's number, the effect we measure for it (a measure of
:mod:`knowshift.study.measures`), the sign the paper found and the rule that puts the paper's
effect on this model's scale; :func:`compare` reads them all from one run folder, with a 95 %
interval and a verdict from that interval.

The paper's numbers are quoted from its arXiv text (arXiv:2405.05904v3, the EMNLP 2024
camera-ready): Table 1 (linear model), Table 2 (category-pure sets), Table 8 (IDK relabelling),
§3 footnote 5 (category mix), §4.1-§4.3 and appendix H. Each finding is measured as one effect
whose sign the paper states (e.g. accuracy at 100 % Unknown minus at 0 %), per seed and paired
on the same questions, with its interval by :mod:`knowshift.core.stats` (t across seeds; a
bootstrap over questions for one seed; clustered OLS for the linear model). The verdict is
``agrees``, ``inconclusive at this size`` or ``disagrees`` (:func:`knowshift.core.stats.verdict`),
never a sign alone; ``-`` marks a descriptive row or one this profile does not run.

A finding is cited by its :attr:`Finding.id` (``beta-unk``), never by its position: ids are
chosen once and never change, so adding a finding renumbers the display column ``#`` only. The
pages that show the findings are written by :mod:`knowshift.book.findings`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core import stats
from ..core.errors import KnowshiftError
from ..core.stats import Estimate
from . import measures
from .measures import NOT_RUN, RunTables  # noqa: F401  (names read from here before)

_mix_variants = measures.mix_variants          # the name tests and benchmarks read


@dataclass(frozen=True)
class Scale:
    """How the paper's effect is put on this model's scale: multiplied by the ratio of a
    baseline accuracy, ``ours(tables)`` (0-1) over the paper's ``paper`` (points, read where
    ``rule`` says)."""
    rule: str
    paper: float
    ours: Callable[[RunTables], float]

    def ratio(self, tables: RunTables) -> float:
        """Ours over the paper's; a baseline of zero or below has no scale to put an effect
        on (ValueError)."""
        ours = self.ours(tables)
        if not ours > 0:
            raise ValueError(f"baseline {ours}")
        return 100 * ours / self.paper


DIRECTION_ONLY = "direction only: the paper's text gives no number for it (its figures only)"
# A finding's id: short kebab-case, chosen once and never changed (pages cite it).
ID_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Finding:
    id: str                         # stable, kebab-case: how pages cite it ({ref}`finding-<id>`)
    claim: str
    where: str
    paper: str
    paper_effect: float | None      # the paper's value of our effect, in points (None: not given)
    direction: int                  # the sign the paper found (+1 / -1; 0: descriptive)
    effect: str                     # what our number measures
    why: str
    ours: Callable[[RunTables], tuple[str, Estimate | None]]
    scale: Scale | None = None      # None: the finding has a direction only

    def scaled(self, tables: RunTables) -> float:
        """The paper's effect on this model's scale, in 0-1 units (NaN: direction only, or a
        baseline this run lacks)."""
        if self.paper_effect is None or self.scale is None:
            return float("nan")
        try:
            return self.paper_effect / 100 * self.scale.ratio(tables)
        except (KeyError, IndexError, ValueError):
            return float("nan")


class UnknownFindingError(KnowshiftError, KeyError):
    """A finding id was asked for that the registry does not have; the message names it and
    the known ids."""

    def __str__(self) -> str:          # a KeyError would quote its message
        return str(self.args[0]) if self.args else ""


# The paper's in-distribution accuracy effects are put on our scale by the ratio of the linear
# model's intercepts (β0: the accuracy with nothing fitted), since its text gives no measured
# accuracy at 0 % Unknown (Figure 3a only).
IN_DISTRIBUTION = Scale("times our in-distribution β0 over the paper's 36.9 (Table 1)", 36.9,
                        measures.intercept("in-distribution"))

FINDINGS = (
    Finding("slick-mix", "SliCK category mix (HighlyKnown / MaybeKnown / WeaklyKnown / Unknown)",
            "§3, footnote 5", "24 / 23 / 17 / 36 % on EntityQuestions (PaLM 2-S)", None, 0,
            "shares of the study set's questions (Wilson intervals)",
            "A 135M model knows far fewer facts than PaLM 2-S, so Unknown dominates.",
            measures.category_shares),
    Finding("fitted-slower",
            "Unknown examples are fitted more slowly than Known ones", "§4.3, Figures 1 and 4",
            "at EARLY_STOP the model fits most Known examples but only a small fraction of "
            "the Unknown ones", None, +1,
            "share of epochs a Known train example is fitted at, minus an Unknown one's "
            "(the area between the fitting curves), in the mix nearest 50 % Unknown",
            "Small sets are memorised within a few epochs, so the lag is shorter.",
            measures.fitted_slower),
    Finding("unknown-lowers-accuracy",
            "A higher Unknown share lowers test accuracy", "§4.1, Figure 3a; appendix H",
            "lower at every fine-tuning duration; up to 14 points in-distribution", -14.0, -1,
            "test accuracy at 100 % minus at 0 % Unknown, CONVERGENCE",
            "A small model's test accuracy is low to begin with, so there is less to lose.",
            measures.accuracy_drops, IN_DISTRIBUTION),
    Finding("gap-grows",
            "The overfitting gap (EARLY_STOP − CONVERGENCE) grows with the Unknown share",
            "§4.1, Figure 3a", "the gap increases monotonically with % Unknown", None, +1,
            "gap at 100 % minus gap at 0 % Unknown",
            "A few epochs leave little room for late overfitting; the gaps are a few questions.",
            measures.overfitting_grows),
    Finding("harmful-once-fitted",
            "Unknown examples are harmful once fitted: D under-performs D_Known at "
            "CONVERGENCE", "§4.2, Figure 3b",
            "D ≈ D_Known at EARLY_STOP (neutral); D < D_Known at CONVERGENCE, by a gap "
            "proportional to % Unknown", None, +1,
            "test accuracy of D_Known minus D, CONVERGENCE",
            "D_Known is half the size of D here; a small model gains little from few examples.",
            measures.filtering),
    Finding("beta-unk", "Fitting Unknown examples lowers accuracy (β_unk < 0), in-distribution",
            "§4.4, Table 1", "β_unk = −8.3 (β0 = 36.9, R² = 0.86)", -8.3, -1,
            "β_unk of the linear model",
            "Few mixes and epochs give few points and wide intervals.",
            measures.coefficient("in-distribution", "unknown_share"), IN_DISTRIBUTION),
    Finding("beta-kn", "Fitting Known examples raises accuracy (β_kn > 0), in-distribution",
            "§4.4, Table 1", "β_kn = 7.3, so |β_unk| ≈ |β_kn|", 7.3, +1,
            "β_kn of the linear model",
            "Known examples of a 135M model are mostly weakly known; fitting them teaches "
            "the format more than it exposes knowledge.",
            measures.coefficient("in-distribution", "known_share"), IN_DISTRIBUTION),
    Finding("ood-beta-unk",
            "The harm transfers to held-out relations (OOD β_unk < 0)", "§4.5, Table 1; "
            "appendix H", "β_unk = −3.0, β_kn = 3.2, R² = 0.95; drops of up to 6 points", -3.0,
            -1, "β_unk of the linear model on OOD test questions",
            "The model knows few of the OOD questions, so there is little to lose.",
            measures.coefficient("out-of-distribution", "unknown_share"),
            Scale("times our OOD β0 over the paper's 36.2 (Table 1)", 36.2,
                  measures.intercept("out-of-distribution"))),
    Finding("maybeknown-best", "D_MaybeKnown gives the best overall accuracy", "§5, Table 2",
            "EARLY_STOP: D_MaybeKnown 43.6, D_Natural 43.5, D_HighlyKnown 40.5, "
            "D_WeaklyKnown 39.2, D_Unknown 37.5", 0.1, +1,
            "test accuracy of D_MaybeKnown minus the best other pure set, EARLY_STOP",
            "What a small model 'maybe knows' is often a lucky guess.",
            lambda t: measures.versus_others(t, "D_MaybeKnown", "EARLY_STOP", best=True),
            Scale("times our D_Natural accuracy at EARLY_STOP over the paper's 43.5 "
                  "(Table 2)", 43.5, measures.natural_accuracy("EARLY_STOP"))),
    Finding("unknown-worst", "D_Unknown overfits most and is worst at CONVERGENCE", "§5, Table 2",
            "D_Unknown 37.5 → 25.8 from EARLY_STOP to CONVERGENCE, the lowest", -9.6, -1,
            "test accuracy of D_Unknown minus the worst other pure set, CONVERGENCE",
            "Few epochs and small sets.",
            lambda t: measures.versus_others(t, "D_Unknown", "CONVERGENCE", best=False),
            Scale("times our D_Natural accuracy at CONVERGENCE over the paper's 41.8 "
                  "(Table 2)", 41.8, measures.natural_accuracy("CONVERGENCE"))),
    Finding("idk-helps",
            "Relabelling Unknown examples \"I don't know\" raises accuracy on answered "
            "questions", "§7, appendix K, Table 8",
            "50 % Unknown: D 43.0 / 38.8 (EARLY_STOP / CONVERGENCE, all answered); D_IDK "
            "61.8 / 61.8 on 58.7 / 55.6 % answered", 23.0, +1,
            "D_IDK accuracy on answered questions minus D accuracy, CONVERGENCE",
            "A small model abstains on most questions once it learns to; accuracy on the few "
            "answered ones is noisy.",
            measures.idk,
            Scale("times our D's accuracy at CONVERGENCE over the paper's 38.8 (Table 8)",
                  38.8, measures.mitigated_mix_accuracy("CONVERGENCE"))),
)


IDS = tuple(f.id for f in FINDINGS)
BY_ID = {f.id: f for f in FINDINGS}
_bad = [i for i in IDS if not ID_PATTERN.fullmatch(i)]
if _bad or len(BY_ID) != len(IDS):
    raise ValueError(f"finding ids must be unique kebab-case: {IDS}")


def by_id(finding_id: str) -> Finding:
    """The finding with id ``finding_id``; :class:`UnknownFindingError` (a ``KeyError`` and a
    ``KnowshiftError``) naming it and the known ids otherwise."""
    try:
        return BY_ID[finding_id]
    except (KeyError, TypeError):
        raise UnknownFindingError(f"no finding has the id {finding_id!r}; known ids: "
                                  + ", ".join(IDS)) from None


def number(finding_id: str) -> int:
    """The display number (``#``) of a finding: its position in :data:`FINDINGS`, from 1.
    Shown beside a finding, never used to cite it."""
    return IDS.index(by_id(finding_id).id) + 1


def compare(run_dir: str | Path) -> pd.DataFrame:
    """One row per finding, in the order of :data:`FINDINGS`: its ``id``, claim, section, the
    paper's number, ours (text), the effect we measure with its interval
    (``effect``/``low``/``high`` in 0-1 units, ``interval``: how it was made), the paper's
    value of that effect (points) and on this model's scale (``paper_scaled``, 0-1 units, by
    the finding's ``scale_rule``), the verdict on direction, the verdict on size, the smallest
    effect the interval could detect with 80 % power (``detectable``, 0-1 units), and why we
    may differ."""
    tables = RunTables(run_dir)
    rows = []
    for f in FINDINGS:
        ours, est = f.ours(tables)
        est = est or stats.NO_ESTIMATE
        scaled = f.scaled(tables) if f.direction else float("nan")
        rows.append({"id": f.id, "finding": f.claim, "section": f.where, "paper": f.paper,
                     "ours": ours, "effect_measured": f.effect, "effect": est.value,
                     "low": est.low, "high": est.high, "interval": est.method,
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

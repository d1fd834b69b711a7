"""The audit's HTML report: one self-contained page (figures embedded as PNG) rendered from a
Jinja2 template with autoescaping, so any text in the audited file shows as text. Its one
script (sorting and filtering the evidence table) is fixed text, allowed by its hash in the
page's Content-Security-Policy, so no other script can run even if some text escaped."""

from __future__ import annotations

import base64
import hashlib
import warnings
from io import BytesIO
from pathlib import Path

import jinja2
import matplotlib.pyplot as plt
import pandas as pd

from ..core.params import shown_value
from ..core.schema import CATEGORIES
from ..study import figures
from .rows import top_skips

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("knowshift.audit", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)
SHOWN_EXAMPLES = 5000     # rows of the evidence table (all of them are in examples.parquet)
SHOWN_SKIPPED = 200
SHOWN_ANSWERS = 4         # sampled answers shown per example
CELL_CHARS = 300
MAX_FIGURE_GROUPS = 40    # a --group-by column with more values gets no figure (audit.json has all)


def _png(fig) -> str:
    """The figure as base64 PNG. Glyphs the plotting font lacks (e.g. CJK group names) show as
    boxes in the figure only: the tables hold the text, so matplotlib's warning is dropped."""
    buf = BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _short(text) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"


def furthest_from_known(table: pd.DataFrame) -> pd.DataFrame:
    """Labelled examples ordered by the share of greedy answers and samples that were right,
    lowest first (then by line and turn)."""
    score = table["p_correct_greedy"] + table["p_correct_sample"].fillna(0)
    return (table.assign(_score=score).sort_values(["_score", "line", "turn"])
            .drop(columns="_score"))


def _evidence_rows(table: pd.DataFrame, columns: list[str]) -> list[dict]:
    """The evidence table's rows, furthest from known first; texts cut to :data:`CELL_CHARS`."""
    rows = []
    for _, r in furthest_from_known(table).head(SHOWN_EXAMPLES).iterrows():
        samples = list(r["sample_predictions"])
        rows.append({
            "line": int(r["line"]), "turn": int(r["turn"]), "category": str(r["category"]),
            "question": _short(r["question"]), "answers": _short(" | ".join(r["answers"])),
            "p_greedy": float(r["p_correct_greedy"]),
            "p_sample": None if pd.isna(r["p_correct_sample"]) else float(r["p_correct_sample"]),
            "greedy": _short(" | ".join(r["greedy_predictions"])),
            "samples": _short(" | ".join(samples[:SHOWN_ANSWERS])
                              + (f" (+{len(samples) - SHOWN_ANSWERS})"
                                 if len(samples) > SHOWN_ANSWERS else "")),
            "matched": "" if pd.isna(r["matched_answer"]) else _short(r["matched_answer"]),
            "context": _short(r["context"]),
            "groups": [_short(r[c]) for c in columns]})
    return rows


def render_html(report: dict, table: pd.DataFrame, skipped: pd.DataFrame,
                group_by: list[str]) -> str:
    """The report page for ``report`` (see :func:`knowshift.audit.judge.run`), its labelled
    ``table`` and ``skipped`` turns, with one category-mix figure overall and one per
    ``group_by`` column of at most :data:`MAX_FIGURE_GROUPS` values."""
    figs = [("Category mix", figures.audit_mix(table, None))] if len(table) else []
    figs += [(f"Category mix by {col}", figures.audit_mix(table, col)) for col in group_by
             if len(table) and table[col].nunique() <= MAX_FIGURE_GROUPS]
    images = [(title, _png(fig)) for title, fig in figs]
    plt.close("all")
    script = _ENV.get_template("audit_table.js").render()
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    effect = report["expected_effect"]
    return _ENV.get_template("audit_report.html.j2").render(
        name=Path(report["data"]).name, model=shown_value("model", report["model"]),
        report=report, rec=report["recommendation"], top_skips=top_skips(report["auditable"]),
        effect=effect, fit=effect["fit"] if effect else None,
        ci=effect["unknown_effect_ci"] if effect else None, images=images,
        categories=CATEGORIES, mix=report["mix"], sample=report["sample"],
        auditable=report["auditable"], group_by=group_by,
        rows=_evidence_rows(table, group_by), n_rows=len(table), shown=SHOWN_EXAMPLES,
        with_context=bool(table["context"].astype(bool).any()),
        unknown=report["most_unknown"], skipped=skipped.head(SHOWN_SKIPPED).to_dict("records"),
        script=script, script_hash=f"sha256-{digest}")

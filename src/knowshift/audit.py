"""Audit a question-answer fine-tuning set before training: how much of it is new to the model,
and what fitting it is likely to do (the paper's finding as a practical tool).

DATA is a ``.jsonl``, ``.csv`` or ``.parquet`` file, one example per row:

- ``question`` (text, required);
- ``answer`` (text) or ``answers`` (a list of accepted answers; in CSV, answers separated by
  ``|``): at least one is required;
- ``relation`` (optional): examples with the same relation share few-shot exemplars, as in the
  study; without it, exemplars are drawn from the whole file;
- any other column is kept, and can group the report (``group_by``).

Bad rows (invalid JSON, a missing or empty question or answer) are all reported with their line
numbers (row numbers for parquet) and nothing is audited until they are fixed.

SliCK runs with the study's code (:func:`knowshift.slick.label_questions`). The file is split in
two halves (balanced per relation, by a seeded hash of each example); each half is labelled
with exemplars drawn from the other, so an example is never among its own exemplars. Finished chunks are cached in the output folder,
so an interrupted audit resumes. The expected effect on accuracy comes from the linear model of
the paper (eq. 1), fitted on a knowshift run (with its confidence interval) or the paper's own
coefficients (Table 1, which reports none)."""

from __future__ import annotations

import base64
import html
import io as _io
import json
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures
from .errors import FactFileError, ParameterError
from .facts import COLUMNS
from .finetune_sets import IDK_ANSWER
from .io import write_json, write_parquet, write_table, write_text
from .slick import CATEGORIES, SlickConfig, category_mix, label_questions

FORMATS = (".jsonl", ".csv", ".parquet")
# The paper's linear model (Table 1, in-distribution), in accuracy points.
PAPER_FIT = {"b0": 36.9, "b_kn": 7.3, "b_unk": -8.3, "r_squared": 0.86,
             "b_unk_ci": None, "b_kn_ci": None,
             "source": "Gekhman et al. (2024), Table 1, in-distribution: PaLM 2-M fine-tuned on "
                       "EntityQuestions (no confidence intervals reported)"}
MATERIAL_POINTS = 1.0      # an expected effect smaller than this is not worth acting on
MIN_KNOWN_TO_FILTER = 0.5  # filter only if at least this share of the data is Known
SHOWN_UNKNOWN = 20


class DataFileError(FactFileError):
    """An audit DATA file is missing, of an unknown format, or has bad rows."""


# ---------------------------------------------------------------------------------- reading
def read_examples(path: str | Path) -> pd.DataFrame:
    """Read and validate DATA; returns one row per example with ``line`` (1-based line of the
    file, or row for parquet), ``question``, ``answers`` (list), ``answer`` and the file's
    other columns. Raises :class:`DataFileError` listing every bad row."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"audit data file {str(path)!r} does not exist")
    if path.suffix not in FORMATS:
        raise DataFileError(f"{path.name}: unknown format {path.suffix!r}; use one of {FORMATS}")
    problems: list[str] = []
    if path.suffix == ".jsonl":
        records, lines = [], []
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                problems.append(f"line {number}: not valid JSON ({err.msg})")
                continue
            if not isinstance(record, dict):
                problems.append(f"line {number}: expected a JSON object, got "
                                f"{type(record).__name__}")
                continue
            records.append(record)
            lines.append(number)
        raw = pd.DataFrame.from_records(records)
        raw["line"] = lines
        where = "line"
    elif path.suffix == ".csv":
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataFileError(f"{path.name}: not a readable CSV file ({err})") from err
        raw["line"] = np.arange(len(raw)) + 2  # line 1 is the header
        if "answers" in raw:
            raw["answers"] = raw["answers"].map(lambda s: [a.strip() for a in s.split("|")]
                                                if s.strip() else [])
        where = "line"
    else:
        try:
            raw = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several types for a bad file
            raise DataFileError(f"{path.name}: not a readable parquet file ({err})") from err
        raw["line"] = np.arange(len(raw)) + 1
        where = "row"
    if raw.empty and not problems:
        raise DataFileError(f"{path.name} holds no examples")
    if "question" not in raw and not problems:
        raise DataFileError(f"{path.name}: no 'question' column (columns: "
                            f"{sorted(c for c in raw.columns if c != 'line')})")
    if "answer" not in raw and "answers" not in raw and not problems:
        raise DataFileError(f"{path.name}: no 'answer' or 'answers' column")
    rows, keep = [], []
    for i, rec in enumerate(raw.to_dict("records")):
        answers = _answers(rec)
        question = rec.get("question")
        bad = []
        if not isinstance(question, str) or not question.strip():
            bad.append("empty or missing question")
        if answers is None:
            bad.append("'answers' must be a list of texts")
        elif not answers:
            bad.append("empty or missing answer")
        if bad:
            problems.append(f"{where} {rec['line']}: {'; '.join(bad)}")
            continue
        rows.append({"question": question.strip(), "answers": answers, "answer": answers[0]})
        keep.append(i)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataFileError(f"{path.name}: {len(problems)} bad row(s), nothing audited:"
                            f"\n  {shown}{more}")
    other = raw.iloc[keep].drop(columns=[c for c in ("question", "answer", "answers")
                                         if c in raw]).reset_index(drop=True)
    out = pd.concat([other[["line"]], pd.DataFrame(rows), other.drop(columns="line")], axis=1)
    out.attrs["columns"] = [c for c in raw.columns if c != "line"]  # the file's own columns
    return out


def _answers(rec: dict) -> list[str] | None:
    """The accepted answers of a record ([] if none, None if malformed)."""
    value = rec.get("answers")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or value == [] or (isinstance(value, float) and np.isnan(value)):
        value = rec.get("answer")
        value = [] if value is None or (isinstance(value, float) and np.isnan(value)) else [value]
    if not isinstance(value, list) or not all(isinstance(a, (str, int, float)) for a in value):
        return None
    return [str(a).strip() for a in value if str(a).strip()]


# ---------------------------------------------------------------------------------- labelling
def as_facts(examples: pd.DataFrame, source: str) -> pd.DataFrame:
    """The examples in the fact-table schema SliCK reads (one relation ``all`` if unlabelled)."""
    relation = (examples["relation"].astype(str) if "relation" in examples
                else pd.Series("all", index=examples.index))
    return pd.DataFrame({
        "id": [f"line{n:07d}" for n in examples["line"]], "relation": relation,
        "subject": examples["question"], "question": examples["question"],
        "answers": examples["answers"], "answer": examples["answer"], "split": "train",
        "ood": False, "popularity": np.nan, "source": source})[COLUMNS]


def label(examples: pd.DataFrame, model, tok, config: SlickConfig, cache_dir: str | Path,
          source: str = "audit", progress: bool = True) -> pd.DataFrame:
    """SliCK on every example: each half of the file is labelled with exemplars from the other
    half (same relation when there is one). Returns the facts with P_correct and category."""
    facts = as_facts(examples, source)
    # halves balanced within each relation: order by a seeded hash, then alternate
    key = facts["id"].map(lambda i: zlib.crc32(f"{config.seed}:{i}".encode()))
    fold = (facts.assign(_key=key).sort_values(["relation", "_key"])
            .groupby("relation").cumcount() % 2).reindex(facts.index)
    for relation, group in facts.groupby("relation"):
        if len(group) < 2 * config.k_shot:
            raise DataFileError(
                f"relation {relation!r} has {len(group)} examples; the audit draws "
                f"{config.k_shot}-shot exemplars from the other half of the file, so it needs "
                f"at least {2 * config.k_shot} examples per relation")
    parts = []
    for f in (0, 1):
        study, pool = facts[fold == f], facts[fold != f]
        parts.append(label_questions(model, tok, study, pool, config,
                                     Path(cache_dir) / f"half{f}", progress=progress))
    out = pd.concat(parts, ignore_index=True)
    return out.set_index("id").loc[facts["id"]].reset_index()


# ---------------------------------------------------------------------------------- the effect
def study_fit(study: str | Path | None) -> dict:
    """The linear model to predict with: refitted from a knowshift run folder (its
    ``regression/points.parquet``, with 95 % CIs), or the paper's Table 1 for ``paper``/None."""
    if study in (None, "paper"):
        return dict(PAPER_FIT)
    from .regression import fit

    points_path = Path(study) / "regression" / "points.parquet"
    if not points_path.is_file():
        raise ParameterError(f"{study} is not a finished knowshift run (no {points_path}); "
                             "pass a run folder or 'paper'")
    res = fit(pd.read_parquet(points_path))
    ci = res.conf_int() * 100
    stamps = Path(study) / ".stamps" / "slick.json"
    model = json.loads(stamps.read_text())["params"].get("model", "?") if stamps.is_file() else "?"
    return {"b0": 100 * res.params["Intercept"], "b_kn": 100 * res.params["known_share"],
            "b_unk": 100 * res.params["unknown_share"], "r_squared": float(res.rsquared),
            "b_kn_ci": ci.loc["known_share"].tolist(), "b_unk_ci": ci.loc["unknown_share"].tolist(),
            "source": f"knowshift run {Path(study).resolve()} (model {model!r}, "
                      f"{int(res.nobs)} checkpoints, in-distribution test accuracy)"}


def expected_effect(fit: dict, known_share: float, unknown_share: float) -> dict:
    """Test accuracy (points) the model predicts once the whole set is fitted, and the part
    owed to the Unknown examples: b_unk x N_unk/|D|, with its 95 % CI when the fit has one."""
    effect = fit["b_unk"] * unknown_share
    ci = None if fit["b_unk_ci"] is None else sorted(c * unknown_share for c in fit["b_unk_ci"])
    return {"known_share": known_share, "unknown_share": unknown_share,
            "predicted_accuracy": fit["b0"] + fit["b_kn"] * known_share + effect,
            "unknown_effect": effect, "unknown_effect_ci": ci, "fit": fit}


def recommend(effect: dict) -> dict:
    """Filter, relabel as IDK, or stop early, from the numbers: act on the Unknown examples only
    if their expected effect is harmful (CI below zero when there is one) and at least
    :data:`MATERIAL_POINTS`; filter if at least :data:`MIN_KNOWN_TO_FILTER` of the data would
    remain, otherwise relabel them "I don't know". Else, early stopping is enough."""
    e, ci = effect["unknown_effect"], effect["unknown_effect_ci"]
    harmful = (ci[1] < 0) if ci is not None else e < 0
    material = -e >= MATERIAL_POINTS
    share = f"{effect['unknown_share']:.0%} of the examples are Unknown"
    span = f" (95 % CI {ci[0]:.1f} to {ci[1]:.1f})" if ci is not None else ""
    if harmful and material:
        if effect["known_share"] >= MIN_KNOWN_TO_FILTER:
            return {"action": "filter", "reason": (
                f"{share}; fitting them is expected to cost {-e:.1f} accuracy points{span}. "
                f"Filtering them keeps {effect['known_share']:.0%} of the data (use filtered "
                "file).")}
        return {"action": "relabel as IDK", "reason": (
            f"{share}; fitting them is expected to cost {-e:.1f} accuracy points{span}, and "
            f"filtering would keep only {effect['known_share']:.0%} of the data. Relabel them "
            "\"I don't know\" instead (use the IDK file).")}
    why = ("no Unknown examples" if effect["unknown_share"] == 0 else
           f"the expected cost of fitting them is {-e:.1f} points{span}, "
           + ("not clearly harmful" if not harmful else "below "
              f"{MATERIAL_POINTS:g} point"))
    return {"action": "stop early", "reason": (
        f"{share}; {why}. Train as is, with early stopping on a development set: Unknown "
        "examples are fitted late, so stopping at the best dev epoch avoids most of their "
        "harm.")}


# ---------------------------------------------------------------------------------- the audit
def run(data: str | Path, model: str = "default", out_dir: str | Path | None = None,
        group_by: list[str] | None = None, study: str | Path | None = None,
        config: SlickConfig = SlickConfig(n_exemplar_sets=4, n_samples=4),
        device: str | None = "auto", progress: bool = True) -> dict:
    """Audit ``data`` against ``model``; write ``out_dir`` (default ``runs/audit/<name>``):
    ``report.html``, ``audit.json``, ``examples.parquet``, ``filtered.<ext>`` (Known examples
    only) and ``idk.<ext>`` (Unknown answers replaced by "I don't know"), in DATA's format.
    Returns the report as a dict."""
    from .models import load_model, resolve_model

    data = Path(data)
    examples = read_examples(data)
    group_by = list(group_by or [])
    missing = [c for c in group_by if c not in examples]
    if missing:
        raise ParameterError(f"group_by column(s) {missing} not in {data.name} (columns: "
                             f"{sorted(c for c in examples if c != 'line')})")
    if "relation" in examples and "relation" not in group_by:
        group_by.insert(0, "relation")
    fit = study_fit(study)  # fail on a bad study folder before any model work
    out_dir = Path(out_dir or Path("runs") / "audit" / data.stem)
    net, tok = load_model(model, device=device)
    columns = examples.attrs["columns"]
    labelled = label(examples, net, tok, config, out_dir / "cache", source=data.name,
                     progress=progress)
    table = examples.assign(**{c: labelled[c].to_numpy() for c in (
        "category", "known", "p_correct_greedy", "p_correct_sample", "greedy_predictions")})
    table["category"] = pd.Categorical(table["category"], categories=CATEGORIES)

    mix = category_mix(table)
    known = float(table["known"].mean())
    effect = expected_effect(fit, known, 1 - known)
    report = {
        "data": str(data.resolve()), "model": model, "model_identity": resolve_model(model)[1],
        "slick": asdict(config), "n_examples": len(table),
        "exemplars": "same relation, other half of the file" if "relation" in examples
        else "whole file, other half",
        "mix": {c: {"n": int(mix.loc[c, "n"]), "share": float(mix.loc[c, "share"])}
                for c in CATEGORIES},
        "by_group": {col: _group_mix(table, col) for col in group_by},
        "most_unknown": _most_unknown(table).to_dict("records"),
        "expected_effect": effect, "recommendation": recommend(effect),
    }
    report["files"] = _write_files(table, columns, data, out_dir) | {
        "examples": str(out_dir / "examples.parquet"), "json": str(out_dir / "audit.json"),
        "report": str(out_dir / "report.html")}
    write_parquet(table.assign(answers=table["answers"].map(list)), out_dir / "examples.parquet")
    write_json(report, out_dir / "audit.json")
    write_text(render_html(report, table, group_by), out_dir / "report.html")
    return report


def _group_mix(table: pd.DataFrame, column: str) -> dict:
    wide = category_mix(table.assign(**{column: table[column].astype(str)}), by=column)
    return {str(k): {c: float(v) for c, v in row.items()} for k, row in wide.iterrows()}


def _most_unknown(table: pd.DataFrame, n: int = SHOWN_UNKNOWN) -> pd.DataFrame:
    """The examples the model is furthest from knowing: Unknown first, then by the share of
    greedy answers and samples that were right (lowest first)."""
    score = table["p_correct_greedy"] + table["p_correct_sample"].fillna(0)
    order = table.assign(_score=score).sort_values(["_score", "line"])
    if (order["category"] == "Unknown").any():
        order = order[order["category"] == "Unknown"]
    order = order.head(n)
    return pd.DataFrame({"line": order["line"].astype(int), "question": order["question"],
                         "answer": order["answer"], "category": order["category"].astype(str),
                         "model_said": order["greedy_predictions"].map(
                             lambda p: p[0] if len(p) else "")})


def _write_files(table: pd.DataFrame, columns: list[str], data: Path, out_dir: Path) -> dict:
    """Ready-to-use files in DATA's format and ``columns``: Known-only, and IDK-relabelled."""
    unknown = (table["category"] == "Unknown").to_numpy()
    idk = table.copy()
    idk["answer"] = np.where(unknown, IDK_ANSWER, idk["answer"])
    idk["answers"] = [[IDK_ANSWER] if u else list(a) for u, a in zip(unknown, idk["answers"])]
    idk = idk[columns]
    filtered = table.loc[table["known"], columns]
    files = {}
    for name, frame in (("filtered", filtered), ("idk", idk)):
        path = out_dir / f"{name}{data.suffix}"
        write_table(frame.reset_index(drop=True), path)
        files[name] = str(path)
    return files


def write_heldout_slice(run_dir: str | Path, size: int, seed: int = 0) -> Path:
    """A fine-tuning file a user might bring, cut from a run's fact set: ``size`` in-distribution
    test-split questions of the run's relations that are not in its study set, as JSONL with
    ``question``, ``answers`` and a ``topic`` column (the relation's name; no relation labels,
    so the audit draws exemplars from the whole file). Written to ``run_dir/audit/``."""
    from .offline_facts import relation_names

    run_dir = Path(run_dir)
    facts = pd.read_parquet(run_dir / "facts" / "facts.parquet")
    study = pd.read_parquet(run_dir / "facts" / "study.parquet")
    pool = facts[(facts["split"] == "test") & ~facts["ood"] & ~facts["id"].isin(study["id"])
                 & facts["relation"].isin(study["relation"].unique())]
    if len(pool) < size:
        raise ParameterError(f"audit_size={size} but only {len(pool)} held-out questions exist")
    picked = pool.sample(size, random_state=seed).sort_values("id")
    names = relation_names()
    slice_ = pd.DataFrame({"question": picked["question"], "answers": picked["answers"].map(list),
                           "topic": picked["relation"].map(lambda r: names.get(r, r))})
    path = run_dir / "audit" / "heldout.jsonl"
    write_table(slice_.reset_index(drop=True), path)
    return path


# ---------------------------------------------------------------------------------- the report
def _png(fig) -> str:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def render_html(report: dict, table: pd.DataFrame, group_by: list[str]) -> str:
    """A self-contained HTML report (figures embedded as PNG)."""
    import matplotlib.pyplot as plt

    esc = html.escape
    effect, rec, fit = report["expected_effect"], report["recommendation"], \
        report["expected_effect"]["fit"]
    ci = effect["unknown_effect_ci"]
    figs = [("Category mix", figures.audit_mix(table, None))]
    figs += [(f"Category mix by {col}", figures.audit_mix(table, col)) for col in group_by]
    images = "".join(f"<figure><img alt='{esc(t)}' src='data:image/png;base64,{_png(f)}'>"
                     f"<figcaption>{esc(t)}</figcaption></figure>" for t, f in figs)
    plt.close("all")
    mix = pd.DataFrame(report["mix"]).T.assign(n=lambda d: d["n"].astype(int),
                                               share=lambda d: d["share"].map("{:.1%}".format))
    unknown = pd.DataFrame(report["most_unknown"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>knowshift audit: {esc(Path(report['data']).name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
line-height:1.45}} table{{border-collapse:collapse;margin:1rem 0}} td,th{{border:1px solid #ccc;
padding:.25rem .5rem;text-align:left}} .rec{{background:#eef5ff;border-left:.4rem solid #2a6ebb;
padding:.75rem 1rem}} img{{max-width:100%}}</style></head><body>
<h1>Audit of {esc(Path(report['data']).name)}</h1>
<p>{report['n_examples']} examples, model <code>{esc(report['model'])}</code>; SliCK with
{report['slick']['n_exemplar_sets']} random {report['slick']['k_shot']}-shot exemplar sets
({esc(report['exemplars'])}), greedy and {report['slick']['n_samples']} samples at
T={report['slick']['temperature']} per set.</p>
<div class="rec"><h2>Recommendation: {esc(rec['action'])}</h2><p>{esc(rec['reason'])}</p></div>
<h2>How much of it does the model already know?</h2>
{mix.to_html(classes="mix")}
{images}
<h2>Expected effect on accuracy</h2>
<p>With the linear model of Gekhman et al. (2024, eq. 1), test accuracy after the whole set is
fitted is predicted at <b>{effect['predicted_accuracy']:.1f}</b> points, of which the Unknown
examples ({effect['unknown_share']:.0%} of the set) account for
<b>{effect['unknown_effect']:+.1f}</b> points{'' if ci is None else
f' (95 % CI {ci[0]:+.1f} to {ci[1]:+.1f})'}. Fitted on: {esc(fit['source'])};
b0 = {fit['b0']:.1f}, b_kn = {fit['b_kn']:.1f}, b_unk = {fit['b_unk']:.1f},
R² = {fit['r_squared']:.2f}. A fit on another model or data is a guide, not a forecast.</p>
<h2>The examples most likely to be Unknown</h2>
{unknown.to_html(index=False, escape=True) if not unknown.empty else '<p>None.</p>'}
<h2>Files</h2><ul>{''.join(f'<li>{esc(k)}: <code>{esc(v)}</code></li>'
                             for k, v in report['files'].items())}</ul>
</body></html>
"""

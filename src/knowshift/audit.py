"""Audit a question-answer fine-tuning set before training: how much of it is new to the model,
and what fitting it is likely to do (the paper's finding as a practical tool).

Reading DATA is :mod:`knowshift.audit_data`, the projection and recommendation
:mod:`knowshift.audit_effect`, the HTML page :mod:`knowshift.audit_report`. Here: SliCK runs
with the study's code (:func:`knowshift.slick.label_questions`). The file is split in two
halves (balanced per relation, by a seeded hash of each example); each half is labelled with
exemplars drawn from the other, so an example is never among its own exemplars. Finished
chunks are cached in the output folder, so an interrupted audit resumes."""

from __future__ import annotations

import zlib
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .audit_data import read_examples
from .audit_effect import expected_effect, recommend, study_fit
from .audit_report import render_html
from .errors import DataFileError, ParameterError
from .files import write_json, write_parquet, write_table, write_text
from .layout import AUDIT_CACHE, RunFolder, audit_file, audit_folder
from .models import load_model, resolve_model, resolve_precision
from .offline_facts import relation_names
from .schema import CATEGORIES, COLUMNS, IDK_ANSWER
from .slick import SlickConfig, category_mix, label_questions

SHOWN_UNKNOWN = 20


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


def run(data: str | Path, model: str, device: str, config: SlickConfig,
        out_dir: str | Path | None = None, group_by: list[str] | None = None,
        study: str | Path | None = None, progress: bool = True) -> dict:
    """Audit ``data`` against ``model`` with SliCK's ``config``; write ``out_dir`` (default
    ``runs/audit/<name>``):
    ``report.html``, ``audit.json``, ``examples.parquet``, ``filtered.<ext>`` (Known examples
    only) and ``idk.<ext>`` (Unknown answers replaced by "I don't know"), in DATA's format.
    Returns the report as a dict."""
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
    out_dir = Path(out_dir or audit_folder(data))
    config = replace(config, precision=resolve_precision(device, config.precision))
    net, tok = load_model(model, device, config.precision)
    columns = examples.attrs["columns"]
    labelled = label(examples, net, tok, config, out_dir / AUDIT_CACHE, source=data.name,
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
        name: str(audit_file(out_dir, name)) for name in ("examples", "json", "report")}
    write_parquet(table.assign(answers=table["answers"].map(list)),
                  audit_file(out_dir, "examples"))
    write_json(report, audit_file(out_dir, "json"))
    write_text(render_html(report, table, group_by), audit_file(out_dir, "report"))
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
        path = audit_file(out_dir, name, data.suffix)
        write_table(frame.reset_index(drop=True), path)
        files[name] = str(path)
    return files


def write_heldout_slice(run_dir: str | Path, size: int, seed: int) -> Path:
    """A fine-tuning file a user might bring, cut from a run's fact set: ``size`` in-distribution
    test-split questions of the run's relations that are not in its study set, as JSONL with
    ``question``, ``answers`` and a ``topic`` column (the relation's name; no relation labels,
    so the audit draws exemplars from the whole file). Written as the product ``heldout``."""
    run = RunFolder(run_dir)
    facts, study = run.read("facts"), run.read("study")
    pool = facts[(facts["split"] == "test") & ~facts["ood"] & ~facts["id"].isin(study["id"])
                 & facts["relation"].isin(study["relation"].unique())]
    if len(pool) < size:
        raise ParameterError(f"audit_size={size} but only {len(pool)} held-out questions exist")
    picked = pool.sample(size, random_state=seed).sort_values("id")
    names = relation_names()
    slice_ = pd.DataFrame({"question": picked["question"], "answers": picked["answers"].map(list),
                           "topic": picked["relation"].map(lambda r: names.get(r, r))})
    path = run.path("heldout")
    write_table(slice_.reset_index(drop=True), path)
    return path


def run_stage(run_dir: str | Path, params, progress: bool = False) -> dict:
    """Stage 8: audit a held-out slice of the run's fact set as a user would audit their own
    file (``topic`` column, no relation labels), with the run's own regression for the
    expected effect; writes the audit's files into the run's audit folder."""
    p = params.for_stage("audit")
    data = write_heldout_slice(run_dir, p.audit_size, p.seed)
    return run(data, p.model, p.device, SlickConfig.from_params(p),
               RunFolder(run_dir).audit_dir(), group_by=["topic"], study=run_dir,
               progress=progress)

"""Audit a fine-tuning set before training: how much of it is new to the model, and what
fitting it is likely to do (the paper's finding as a practical tool, and a gate).

Reading DATA is :mod:`knowshift.audit.rows` (row shapes, skips) over
:mod:`knowshift.audit.containers` (containers), the projection and recommendation
:mod:`knowshift.audit.effect`, the HTML page :mod:`knowshift.audit.report`. Here: SliCK runs
with the study's code (:func:`knowshift.study.slick.label_questions`). A full audit splits the
examples in two halves (balanced per relation, by a seeded hash of each example) and labels
each half with exemplars drawn from the other, so an example is never among its own
exemplars; the work is cut in slices of :data:`SLICE` examples whose SliCK chunks are cached
in the output folder, so an interrupted audit resumes. ``sample`` audits a seeded random
sample instead (stratified by the ``group_by`` columns), with exemplars from the examples
not sampled, and reports each share with its Wilson 95 % interval."""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.answers import matched
from ..core.errors import ParameterError
from ..core.files import write_json, write_parquet, write_text
from ..core.layout import AUDIT_CACHE, audit_file, audit_folder
from ..core.progress import Progress
from ..core.schema import CATEGORIES, COLUMNS
from ..engine.models import check_source, load_model, resolve_model, with_precision
from ..study.offline_facts import build_offline_facts
from ..study.categories import category_mix
from ..study.slick import SlickConfig, label_questions
from . import containers, rows
from .effect import expected_effect, recommend, study_fit
from .report import furthest_from_known, render_html
from .rows import Budget, Examples, read_examples

SHOWN_UNKNOWN = 20
SLICE = 256          # examples per cached SliCK slice of a full audit (what a resume may redo)
MIN_JUDGED_SHARE = 0.25   # below this share of the file judged, the audit advises nothing
MIN_SHOTS = 2             # fewer shots than this from a small file: built-in exemplars instead
BUILTIN_POOL = 400        # built-in exemplar candidates per relation of the file
# Built-in relations by the type of answer their questions ask for (the fallback's exemplars).
ANSWER_TYPES = {"person": ("P57", "P58", "P161"),
                "place": ("P17", "P131", "P36", "P19", "P20", "P30", "P1412", "P495")}
TYPE_OF_QUESTION = [("person", re.compile(r"^(?:\W*)(?:who|whom|whose)\b", re.I)),
                    ("place", re.compile(r"^(?:\W*)(?:where\b|(?:in )?(?:which|what) "
                                         r"(?:country|city|state|continent|town|place)\b)",
                                         re.I))]
# Exit codes of `knowshift audit` (documented in its --help and docs/audit.md).
EXIT_OK, EXIT_ERROR, EXIT_GATE = 0, 2, 3


def example_ids(table: pd.DataFrame) -> list[str]:
    """Stable ids: the row's line (and the turn, past a conversation's first)."""
    return [f"line{n:07d}" + (f"-turn{t}" if t > 1 else "")
            for n, t in zip(table["line"], table["turn"])]


def as_facts(examples: pd.DataFrame, source: str) -> pd.DataFrame:
    """The examples in the fact-table schema SliCK reads (one relation ``all`` if unlabelled)."""
    relation = (examples["relation"].astype(str) if "relation" in examples
                else pd.Series("all", index=examples.index))
    return pd.DataFrame({
        "id": example_ids(examples), "relation": relation,
        "subject": examples["question"], "question": examples["question"],
        "answers": examples["answers"], "answer": examples["answer"], "split": "train",
        "ood": False, "popularity": np.nan, "source": source}, index=examples.index)[COLUMNS]


@dataclass(frozen=True)
class ExemplarChoice:
    """Where an audit's few-shot exemplars come from: the file (the profile's ``k_shot``, or
    fewer for a small file) or, for a file too small for :data:`MIN_SHOTS`, the built-in fact
    set; ``why`` says why it is not the profile's k-shot from the file."""
    k_shot: int
    builtin: bool = False
    why: str | None = None

    def describe(self, sampled: bool, by_relation: bool) -> str:
        if self.builtin:
            return (f"{self.k_shot}-shot, from the built-in fact set (questions asking for "
                    "the same type of answer)")
        return (f"{self.k_shot}-shot, " + ("same relation, " if by_relation else "whole file, ")
                + ("examples not sampled" if sampled else "other half"))


def choose_exemplars(examples: pd.DataFrame, k_shot: int, pool: pd.DataFrame | None = None
                     ) -> ExemplarChoice:
    """The profile's ``k_shot`` exemplars from the file when every relation has enough (twice
    as many for a full audit, whose halves are each other's exemplars; ``k_shot`` outside the
    sample for a sampled one, whose ``pool`` is the rest), else the most shots down to
    :data:`MIN_SHOTS` every relation allows, else ``k_shot`` from the built-in fact set."""
    counted = pool if pool is not None else examples
    relations = (examples["relation"].astype(str) if "relation" in examples
                 else pd.Series("all", index=examples.index))
    have = {r: int((counted["relation"].astype(str) == r).sum()) if "relation" in counted
            else len(counted) for r in relations.unique()}
    smallest = min(have, key=have.get)
    fewest = have[smallest]
    per_shot = 1 if pool is not None else 2
    whose = f"relation {smallest!r} has" if "relation" in examples else "the file has"
    said = (f"{whose} {fewest} judged example{'s' if fewest != 1 else ''}"
            + (" outside the sample" if pool is not None else
               " (each half's exemplars are the other half)"))
    if fewest >= per_shot * k_shot:
        return ExemplarChoice(k_shot)
    if fewest >= per_shot * MIN_SHOTS:
        k = fewest // per_shot
        return ExemplarChoice(k, why=f"not {k_shot}-shot: {said}")
    return ExemplarChoice(k_shot, builtin=True, why=(
        f"{said}: too few for {MIN_SHOTS}-shot exemplars from the file"))


def answer_type(question: str) -> str:
    """The type of answer a question asks for: ``person``, ``place`` or ``other``."""
    return next((kind for kind, rule in TYPE_OF_QUESTION if rule.match(question)), "other")


def builtin_exemplars(facts: pd.DataFrame, seed: int) -> pd.DataFrame:
    """For each relation of ``facts``, :data:`BUILTIN_POOL` questions of the built-in fact set
    (training split) whose answers are of the type most of the relation's questions ask for,
    filed under that relation."""
    table = build_offline_facts()
    table = table[table["split"] == "train"]
    parts = []
    for relation, group in facts.groupby("relation", sort=True):
        kind = group["question"].map(answer_type).value_counts().idxmax()
        rows = table[table["relation"].isin(ANSWER_TYPES[kind])] if kind in ANSWER_TYPES \
            else table
        rows = rows.sample(min(BUILTIN_POOL, len(rows)),
                           random_state=zlib.crc32(f"{seed}:{relation}".encode()))
        parts.append(rows.assign(relation=relation, id="builtin:" + rows["id"]))
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def label(examples: pd.DataFrame, model, tok, config: SlickConfig, cache_dir: str | Path,
          source: str = "audit", progress: bool = True,
          exemplars: pd.DataFrame | None = None, slice_size: int = SLICE,
          choice: ExemplarChoice | None = None) -> pd.DataFrame:
    """SliCK on every example, with exemplars of the same relation (when there is one) drawn
    from ``exemplars`` when given, else from the other half of ``examples`` (never an example
    with the same question text as one being labelled), or as ``choice`` says
    (:func:`choose_exemplars` when not given: a small file gets fewer shots or built-in
    exemplars). The work is cut in cached slices of ``slice_size`` examples (the exemplar
    sets do not depend on the slice). Returns the facts with P_correct, category and the
    model's answers, in the order of ``examples``."""
    facts = as_facts(examples, source)
    choice = choice or choose_exemplars(examples, config.k_shot, exemplars)
    config = replace(config, k_shot=choice.k_shot)
    if choice.builtin:
        jobs = [(facts, builtin_exemplars(facts, config.seed), Path(cache_dir) / "builtin")]
    elif exemplars is not None:
        jobs = [(facts, as_facts(exemplars, source), Path(cache_dir) / "sample")]
    else:
        # halves balanced within each relation: order by a seeded hash, then alternate
        key = facts["id"].map(lambda i: zlib.crc32(f"{config.seed}:{i}".encode()))
        fold = (facts.assign(_key=key).sort_values(["relation", "_key"])
                .groupby("relation").cumcount() % 2).reindex(facts.index)
        jobs = [(facts[fold == f], facts[fold != f], Path(cache_dir) / f"half{f}")
                for f in (0, 1)]
    # a question repeated in the file must not be its own exemplar either
    jobs = [(study, pool[~pool["question"].isin(study["question"])], folder)
            for study, pool, folder in jobs]
    slices = [(study.iloc[i:i + slice_size], pool, folder / f"slice{i // slice_size:04d}")
              for study, pool, folder in jobs for i in range(0, len(study), slice_size)]
    parts = []
    with Progress(None, len(facts), "audit", "examples", enabled=progress and len(slices) > 1
                  ) as bar:
        for study, pool, folder in slices:
            parts.append(label_questions(model, tok, study, pool, config, folder,
                                         progress=progress and len(slices) == 1))
            bar.update(len(study), f"slice {len(parts)}/{len(slices)}")
    out = pd.concat(parts, ignore_index=True)
    return out.set_index("id").loc[facts["id"]].reset_index()


def draw_sample(table: pd.DataFrame, n: int, by: list[str], seed: int) -> pd.DataFrame:
    """``n`` examples drawn at random (fixed by ``seed``), stratified by the ``by`` columns
    with proportional allocation (largest remainders), so the sample's shares estimate the
    file's without weights. All of ``table`` if ``n`` is not smaller."""
    if n >= len(table):
        return table
    groups = table.groupby([table[c].astype(str) for c in by], sort=True) if by else [
        ("all", table)]
    groups = list(groups)
    quota = np.array([len(g) for _, g in groups]) * n / len(table)
    size = np.floor(quota).astype(int)
    size[np.argsort(-(quota - size), kind="stable")[:n - size.sum()]] += 1
    rng = np.random.default_rng(seed)
    picked = [g.iloc[np.sort(rng.choice(len(g), k, replace=False))]
              for (_, g), k in zip(groups, size) if k]
    return pd.concat(picked).sort_index()


def run(data: str | Path, model: str, device: str, config: SlickConfig,
        out_dir: str | Path | None = None, group_by: list[str] | None = None,
        study: str | Path | None = None, progress: bool = True, shape: str | None = None,
        sample: int | None = None, budget: Budget = Budget()) -> dict:
    """Audit ``data`` against ``model`` with SliCK's ``config``; write ``out_dir`` (default
    ``runs/audit/<name>``): ``report.html``, ``audit.json``, ``examples.parquet`` (the
    evidence per example), ``skipped.parquet`` and, for a full audit, ``filtered`` (rows with
    no Unknown example) and ``idk`` (Unknown answers replaced by "I don't know") in DATA's
    own container and fields. Returns the report as a dict."""
    data = Path(data)
    examples = read_examples(data, shape, budget)
    table = examples.table
    group_by = list(group_by or [])
    missing = [c for c in group_by if c not in table]
    if missing and not table.empty:
        raise ParameterError(f"group_by column(s) {missing} not in {data.name} (columns: "
                             f"{sorted(c for c in table if c not in rows.EXAMPLE_COLUMNS)})")
    group_by = [c for c in group_by if c in table]
    if "relation" in table and "relation" not in group_by:
        group_by.insert(0, "relation")
    if sample is not None and sample < 1:
        raise ParameterError(f"sample={sample}: give a number of examples, at least 1")
    fit = study_fit(study)  # fail on a bad study folder before any model work
    check_source(model)     # and on a model that is not there (a gated hub id: how to log in)
    out_dir = Path(out_dir or audit_folder(data))
    sampled = draw_sample(table, sample, group_by, config.seed) if sample else table
    is_sample = len(sampled) < len(table)
    config = with_precision(config, device)
    judged = examples.auditable()
    choice = None
    if table.empty:
        audited = _evidence(table, None)
    else:
        rest = table.drop(sampled.index) if is_sample else None
        choice = choose_exemplars(sampled, config.k_shot, rest)
        config = replace(config, k_shot=choice.k_shot)
        net, tok = load_model(model, device, config.precision)
        labelled = label(sampled, net, tok, config, out_dir / AUDIT_CACHE, source=data.name,
                         progress=progress, exemplars=rest, choice=choice)
        audited = _evidence(sampled, labelled)

    mix = _mix(audited, is_sample)
    effect = None
    if len(audited):
        known = float(audited["known"].mean())
        effect = expected_effect(fit, known, 1 - known,
                                 (mix["Unknown"]["low"], mix["Unknown"]["high"]) if is_sample
                                 else None)
    can_judge = judged["examples"] > 0 and judged["share"] >= MIN_JUDGED_SHARE
    report = {
        "data": str(data.resolve()), "model": model, "model_identity": resolve_model(model)[1],
        "format": {"container": examples.data.container, "shape": examples.shape},
        "slick": asdict(config), "budget": asdict(budget), "n_examples": len(audited),
        "auditable": judged, "can_judge": can_judge,
        "sample": ({"n": len(audited), "of": len(table), "seed": config.seed,
                    "stratified_by": group_by, "interval": "Wilson 95 %"} if is_sample
                   else None),
        "exemplars": choice.describe(is_sample, "relation" in table) if choice else None,
        "exemplar_fallback": choice.why if choice else None,
        "mix": mix,
        "by_group": {col: _group_mix(audited, col) for col in group_by},
        "most_unknown": _most_unknown(audited).to_dict("records"),
        "expected_effect": effect,
        "recommendation": (recommend(effect, judged["share"]) if can_judge
                           else cannot_judge(judged)),
    }
    files = {} if is_sample or not can_judge else _write_files(examples, audited, out_dir)
    report["files"] = files | {name: str(audit_file(out_dir, name))
                               for name in ("examples", "skipped", "json", "report")}
    write_parquet(audited, audit_file(out_dir, "examples"))
    write_parquet(examples.skipped, audit_file(out_dir, "skipped"))
    write_json(report, audit_file(out_dir, "json"))
    write_text(render_html(report, audited, examples.skipped, group_by),
               audit_file(out_dir, "report"))
    return report


def cannot_judge(judged: dict) -> dict:
    """No advice for a file SliCK cannot judge enough of: what was judged, and why the rest
    was not."""
    top = rows.top_skips(judged)
    return {"action": "none", "reason": (
        f"The audit cannot judge this file: {judged['examples']} of its "
        f"{judged['examples'] + judged['skipped']} examples "
        f"({judged['share']:.0%}, under {MIN_JUDGED_SHARE:.0%}) are questions for a short fact "
        f"SliCK can check{'; the rest are skipped: ' + top if top else ''}. Nothing is "
        "recommended and no file is rewritten. If the file is factual after all, "
        "--judge-all judges every example within the length budget.")}


def check_fail_above(share: float) -> None:
    """A gate's threshold is a share of the examples, between 0 and 1."""
    if not 0 <= share <= 1:
        raise ParameterError(f"fail_above={share}: give a share between 0 and 1 (e.g. 0.3)")


def gate(report: dict, fail_above: float) -> tuple[bool, str]:
    """Whether the audited file passes ``--fail-above``: the Unknown share of the judged
    examples (under a sample, the lower end of its 95 % interval) must not exceed
    ``fail_above``; a file the audit cannot judge does not pass. Returns (passed, why)."""
    check_fail_above(fail_above)
    judged = report["auditable"]
    if not report["can_judge"]:
        return False, (f"the audit cannot judge this file ({judged['examples']} examples "
                       f"judged, {judged['share']:.0%} of it), so it cannot pass --fail-above")
    unknown = report["mix"]["Unknown"]
    value, what = ((unknown["low"], "lower 95 % bound of the Unknown share")
                   if report["sample"] else (unknown["share"], "Unknown share"))
    passed = value <= fail_above
    return passed, (f"{what} {value:.1%} of the judged examples ({judged['share']:.0%} of the "
                    f"file) {'is within' if passed else 'exceeds'} --fail-above "
                    f"{fail_above:.1%}")


LABELS = ("category", "known", "p_correct_greedy", "p_correct_sample", "greedy_predictions",
          "sample_predictions")


def _evidence(examples: pd.DataFrame, labelled: pd.DataFrame | None) -> pd.DataFrame:
    """The examples with SliCK's labels and what they rest on: P_correct from greedy answers
    and from samples, the answers themselves, and the accepted answer an answer matched
    (``labelled`` None: no example was judged)."""
    out = examples.reset_index(drop=True).assign(**{
        c: labelled[c].to_numpy() if labelled is not None else [] for c in LABELS})
    out["category"] = pd.Categorical(out["category"], categories=CATEGORIES)
    out["answers"] = out["answers"].map(list)
    out["greedy_predictions"] = out["greedy_predictions"].map(list)
    out["sample_predictions"] = out["sample_predictions"].map(list)
    out["matched_answer"] = [
        next((m for p in list(g) + list(s) if (m := matched(p, a)) is not None), None)
        for g, s, a in zip(out["greedy_predictions"], out["sample_predictions"], out["answers"])]
    return out


def _mix(table: pd.DataFrame, with_interval: bool) -> dict:
    """Each category's count and share; under a sample, with its Wilson 95 % interval."""
    mix = category_mix(table)
    return {c: {"n": int(mix.loc[c, "n"]),
                "share": float(mix.loc[c, "share"]) if len(table) else 0.0,
                "low": float(mix.loc[c, "low"]) if with_interval else None,
                "high": float(mix.loc[c, "high"]) if with_interval else None}
            for c in CATEGORIES}


def _group_mix(table: pd.DataFrame, column: str) -> dict:
    wide = category_mix(table.assign(**{column: table[column].astype(str)}), by=column)
    return {str(k): {c: float(v) for c, v in row.items()} for k, row in wide.iterrows()}


def _most_unknown(table: pd.DataFrame, n: int = SHOWN_UNKNOWN) -> pd.DataFrame:
    """The examples the model is furthest from knowing: Unknown first, then by the share of
    greedy answers and samples that were right (lowest first)."""
    order = furthest_from_known(table)
    if (order["category"] == "Unknown").any():
        order = order[order["category"] == "Unknown"]
    order = order.head(n)
    return pd.DataFrame({"line": order["line"].astype(int), "turn": order["turn"].astype(int),
                         "question": order["question"], "answer": order["answer"],
                         "category": order["category"].astype(str),
                         "model_said": order["greedy_predictions"].map(
                             lambda p: p[0] if len(p) else "")})


def _write_files(examples: Examples, audited: pd.DataFrame, out_dir: Path) -> dict:
    """Ready-to-use files in DATA's container with every field of the rows they keep:
    without the rows holding an Unknown example, and with Unknown answers relabelled."""
    unknown = audited["category"] == "Unknown"
    files = {}
    for name, records in (("filtered", rows.filtered(examples, unknown)),
                          ("idk", rows.relabelled(examples, unknown))):
        path = audit_file(out_dir, name, examples.data.suffix)
        containers.write(examples.data, records, path)
        files[name] = str(path)
    return files

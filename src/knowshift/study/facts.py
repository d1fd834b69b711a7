"""Fact sets in the tidy schema of :mod:`knowshift.core.schema`: the real EntityQuestions files, or
the built-in offline set (:mod:`knowshift.study.offline_facts`), plus study-set sampling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import FactFileError, UnknownRelationError
from ..core.files import write_parquet
from ..core.layout import RunFolder
from ..core.schema import COLUMNS, SPLITS, tidy
from .offline_facts import build_offline_facts

# EntityQuestions question templates (Sciavolino et al., 2021), used to recover the subject.
EQ_TEMPLATES = {
    "P17": "Which country is {} located in?", "P19": "Where was {} born?",
    "P20": "Where did {} die?", "P26": "Who is {} married to?",
    "P36": "What is the capital of {}?", "P40": "Who is {}'s child?",
    "P50": "Who is the author of {}?", "P69": "Where was {} educated?",
    "P106": "What kind of work does {} do?", "P112": "Who founded {}?",
    "P127": "Who owns {}?", "P131": "Where is {} located?",
    "P136": "What type of music does {} play?", "P159": "Where is the headquarter of {}?",
    "P170": "Who was {} created by?", "P175": "Who performed {}?",
    "P176": "Which company is {} produced by?", "P264": "What music label is {} represented by?",
    "P276": "Where is {} located?", "P407": "Which language was {} written in?",
    "P413": "What position does {} play?", "P495": "Which country was {} created in?",
    "P740": "Where was {} founded?", "P800": "What is {} famous for?",
}
# The paper's 12 in-distribution relations; every other relation is out-of-distribution. The
# paper holds out 7 of the other 12 for its OOD test set (section 2, appendix A; the `paper`
# profile keeps these 19).
EQ_IN_DISTRIBUTION = ("P17", "P19", "P26", "P36", "P40", "P69", "P131", "P136", "P264",
                      "P495", "P740", "P800")
EQ_OUT_OF_DISTRIBUTION = ("P127", "P50", "P407", "P176", "P170", "P175", "P112")
_EQ_FILE = re.compile(r"^(P\d+)\.(train|dev|test)\.json$")


def _eq_files(folder: str | Path) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FactFileError(f"EntityQuestions folder {str(folder)!r} does not exist (the "
                            "published files: docs/models-and-data.md, \"The paper's data\")")
    files = sorted(p for p in folder.rglob("*.json") if _EQ_FILE.match(p.name))
    if not files:
        raise FactFileError(f"no EntityQuestions files (<relation>.<split>.json, e.g. "
                            f"P17.train.json) found under {str(folder)!r}")
    return files


def _fact_table(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        raise FactFileError(f"fact table {source!r} does not exist")
    return path


def source_files(source: str) -> list[Path]:
    """The files a fact source is read from (none for the built-in set, which its package
    versions key): a stage reading them is keyed by their bytes, so editing an EntityQuestions
    folder in place reruns what was built from it."""
    if source == "offline":
        return []
    if Path(source).suffix == ".parquet":
        return [_fact_table(source)]
    return _eq_files(source)


def check_source(source: str) -> None:
    """Refuse a fact source that is not there, before any stage runs."""
    if source == "offline":
        return
    if Path(source).suffix == ".parquet":
        _fact_table(source)
    else:
        _eq_files(source)


def load_entityquestions(folder: str | Path) -> pd.DataFrame:
    """Read the published EntityQuestions files (``<relation>.<split>.json``, anywhere under
    ``folder``), each a JSON list of ``{"question": ..., "answers": [...]}``."""
    rows = []
    for path in _eq_files(folder):
        relation, split = _EQ_FILE.match(path.name).groups()
        try:
            items = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FactFileError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(items, list):
            raise FactFileError(f"{path}: expected a JSON list of questions")
        pattern = None
        if relation in EQ_TEMPLATES:
            pattern = re.compile("^" + re.escape(EQ_TEMPLATES[relation]).replace(r"\{\}", "(.+)")
                                 + "$")
        for i, item in enumerate(items):
            ok = (isinstance(item, dict) and isinstance(item.get("question"), str)
                  and isinstance(item.get("answers"), list) and item["answers"]
                  and all(isinstance(a, str) for a in item["answers"]))
            if not ok:
                raise FactFileError(f"{path}: item {i} needs a 'question' string and a "
                                    f"non-empty 'answers' list of strings, got {item!r:.120}")
            m = pattern.match(item["question"]) if pattern else None
            subject = m.group(1) if m else item["question"]
            rows.append({"id": f"{relation}:{split}:{i}", "relation": relation,
                         "subject": subject, "question": item["question"],
                         "answers": item["answers"], "split": split,
                         "ood": relation not in EQ_IN_DISTRIBUTION, "popularity": np.nan,
                         "source": "EntityQuestions"})
    return tidy(pd.DataFrame(rows))


def load_facts(source: str = "offline") -> pd.DataFrame:
    """``offline`` (the built-in set), a folder of EntityQuestions files, or a fact table
    (``.parquet``) in the schema above."""
    if source == "offline":
        return build_offline_facts()
    if Path(source).suffix == ".parquet":
        df = pd.read_parquet(_fact_table(source))
        missing = set(COLUMNS) - set(df.columns)
        if missing:
            raise FactFileError(f"fact table {source!r} lacks columns {sorted(missing)}")
        return tidy(df)
    return load_entityquestions(source)


def select_relations(facts: pd.DataFrame, relations: list[str] | None) -> pd.DataFrame:
    """Keep only ``relations`` (all when None); an unknown id is an error that lists the
    known ones."""
    if not relations:
        return facts
    known = sorted(facts["relation"].unique())
    unknown = [r for r in relations if r not in known]
    if unknown:
        raise UnknownRelationError(f"unknown relation(s) {unknown}; this fact set has {known}")
    return facts[facts["relation"].isin(relations)].reset_index(drop=True)


def _even_quota(total: int, groups: list[str]) -> dict[str, int]:
    base, extra = divmod(total, len(groups)) if groups else (0, 0)
    return {g: base + (i < extra) for i, g in enumerate(sorted(groups))}


def sample_study_set(facts: pd.DataFrame, n_train: int, n_dev: int, n_test: int,
                     n_ood: int, *, seed: int) -> pd.DataFrame:
    """A smaller study set: ``n_train``/``n_dev``/``n_test`` in-distribution questions and
    ``n_ood`` out-of-distribution test questions, each spread evenly over relations
    (a relation with too few questions gives all it has). Deterministic given ``seed``."""
    parts = []
    wanted = [("train", False, n_train), ("dev", False, n_dev), ("test", False, n_test),
              ("test", True, n_ood)]
    for split, ood, total in wanted:
        pool = facts[(facts["split"] == split) & (facts["ood"] == ood)]
        quota = _even_quota(total, list(pool["relation"].unique()))
        for relation, group in pool.groupby("relation", sort=True):
            n = min(quota[relation], len(group))
            parts.append(group.sample(n=n, random_state=seed) if n else group.iloc[:0])
    return tidy(pd.concat(parts)) if parts else facts.iloc[:0]


def exemplar_pool(facts: pd.DataFrame, study: pd.DataFrame, split: str = "train"
                  ) -> pd.DataFrame:
    """Few-shot exemplars come from each relation's ``split`` (the paper draws them from the
    dev split, appendix C), minus the questions being labelled (a question must never appear
    among its own exemplars)."""
    return facts[(facts["split"] == split) & ~facts["id"].isin(study["id"])]


def draw(params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the fact set of the chosen relations, the study set) that stage 1 writes."""
    table = select_relations(load_facts(params["facts"]), params["relations"])
    study = sample_study_set(table, params["n_train"], params["n_dev"], params["n_test"],
                             params["n_ood"], seed=params["seed"])
    if study.empty:
        raise FactFileError(f"the study set drawn from {params['facts']!r} is empty: check the "
                            "sizes and that the fact set has train/test questions")
    return table, study


def run_stage(run_dir: str | Path, params, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Stage 1: load the fact set, keep the chosen relations, sample the study set, and write
    both to the run folder (products ``facts`` and ``study``)."""
    table, study = draw(params.for_stage("facts"))
    run = RunFolder(run_dir)
    write_parquet(table, run.path("facts"))
    write_parquet(study, run.path("study"))
    return {"facts": table, "study": study}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Questions per relation and split, with the OOD flag and a popularity median."""
    counts = table.groupby(["relation", "ood", "split"]).size().unstack("split", fill_value=0)
    counts = counts.reindex(columns=[s for s in SPLITS if s in counts.columns])
    counts["median_popularity"] = table.groupby(["relation", "ood"])["popularity"].median()
    return counts.reset_index()

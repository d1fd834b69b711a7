"""Reading an audit's DATA file: one reader per format, then one validation of the rows.

DATA is a ``.jsonl``, ``.csv`` or ``.parquet`` file, one example per row:

- ``question`` (text, required);
- ``answer`` (text) or ``answers`` (a list of accepted answers; in CSV, answers separated by
  ``|``): at least one is required;
- ``relation`` (optional): examples with the same relation share few-shot exemplars, as in the
  study; without it, exemplars are drawn from the whole file;
- any other column is kept, and can group the report (``group_by``).

Bad rows (invalid JSON, a missing or empty question or answer) are all reported with their line
numbers (row numbers for parquet) and nothing is audited until they are fixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataFileError

SHOWN_PROBLEMS = 20


def read_jsonl(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Rows of a JSON-lines file with their ``line`` numbers, and the lines that are not JSON
    objects."""
    records, lines, problems = [], [], []
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
    return raw, problems


def read_csv(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Rows of a CSV file (line 1 is the header); ``answers`` cells split on ``|``."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path.name}: not a readable CSV file ({err})") from err
    raw["line"] = np.arange(len(raw)) + 2
    if "answers" in raw:
        raw["answers"] = raw["answers"].map(lambda s: [a.strip() for a in s.split("|")]
                                            if s.strip() else [])
    return raw, []


def read_parquet(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Rows of a parquet file, numbered from 1."""
    try:
        raw = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataFileError(f"{path.name}: not a readable parquet file ({err})") from err
    raw["line"] = np.arange(len(raw)) + 1
    return raw, []


READERS = {".jsonl": read_jsonl, ".csv": read_csv, ".parquet": read_parquet}
FORMATS = tuple(READERS)


def read_examples(path: str | Path) -> pd.DataFrame:
    """Read and validate DATA; returns one row per example with ``line`` (1-based line of the
    file, or row for parquet), ``question``, ``answers`` (list), ``answer`` and the file's
    other columns. Raises :class:`DataFileError` listing every bad row."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"audit data file {str(path)!r} does not exist")
    if path.suffix not in READERS:
        raise DataFileError(f"{path.name}: unknown format {path.suffix!r}; use one of {FORMATS}")
    raw, problems = READERS[path.suffix](path)
    where = "row" if path.suffix == ".parquet" else "line"
    if not problems:
        _check_columns(raw, path)
    rows, keep = [], []
    for i, rec in enumerate(raw.to_dict("records")):
        answers = answers_of(rec)
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
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = (f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more"
                if len(problems) > SHOWN_PROBLEMS else "")
        raise DataFileError(f"{path.name}: {len(problems)} bad row(s), nothing audited:"
                            f"\n  {shown}{more}")
    other = raw.iloc[keep].drop(columns=[c for c in ("question", "answer", "answers")
                                         if c in raw]).reset_index(drop=True)
    out = pd.concat([other[["line"]], pd.DataFrame(rows), other.drop(columns="line")], axis=1)
    out.attrs["columns"] = [c for c in raw.columns if c != "line"]  # the file's own columns
    return out


def _check_columns(raw: pd.DataFrame, path: Path) -> None:
    if raw.empty:
        raise DataFileError(f"{path.name} holds no examples")
    if "question" not in raw:
        raise DataFileError(f"{path.name}: no 'question' column (columns: "
                            f"{sorted(c for c in raw.columns if c != 'line')})")
    if "answer" not in raw and "answers" not in raw:
        raise DataFileError(f"{path.name}: no 'answer' or 'answers' column")


def answers_of(rec: dict) -> list[str] | None:
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

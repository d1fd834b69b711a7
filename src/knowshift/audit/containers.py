"""An audit's DATA file as plain records, whatever holds them, and written back in kind.

Containers: JSON lines (``.jsonl``), a JSON array (``.json``, as Alpaca and ShareGPT publish
theirs), CSV, parquet, and a Hugging Face dataset saved with ``save_to_disk`` (a folder; a
``DatasetDict`` is read from its ``train`` split). Each record is a dict holding every field
of its row, so the audit's output files keep the input's container, schema and fields.
Problems with the file itself (missing, not UTF-8, empty, one line too long to be a row) are
each one :class:`DataFileError` that names the file and the place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import DataFileError
from ..core.files import write_atomically, write_folder, write_table, write_text

MAX_LINE_BYTES = 8 * 2**20    # a JSON-lines row longer than this is not one fine-tuning example
MAX_JSON_BYTES = 1 * 2**30    # a JSON array is parsed whole; past this, use JSON lines
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
CONTAINERS = ("jsonl", "json", "csv", "parquet", "hf")


@dataclass
class DataFile:
    """The records of one DATA file, with what is needed to write records back alike:
    ``rows`` are the 1-based numbers messages cite (lines for JSONL and CSV, else rows)."""
    path: Path
    container: str
    records: list[dict]
    rows: list[int]
    where: str = "row"
    problems: list[str] = field(default_factory=list)    # rows that could not be parsed
    schema: Any = None                                   # parquet schema or HF features

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def suffix(self) -> str:
        """The suffix of files in this container (none for a dataset folder)."""
        return "" if self.container == "hf" else self.path.suffix


def read(path: str | Path) -> DataFile:
    """Every record of ``path``; see the module docstring for the containers."""
    path = Path(path)
    if path.is_dir():
        return _read_hf(path)
    if not path.is_file():
        raise DataFileError(f"audit data file {str(path)!r} does not exist")
    if path.suffix not in SUFFIXES:
        raise DataFileError(f"{path.name}: unknown format {path.suffix!r}; use one of "
                            f"{SUFFIXES} or a Hugging Face dataset folder (save_to_disk)")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path.name} is empty: it holds no examples")
    data = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv,
            ".parquet": _read_parquet}[path.suffix](path)
    if not data.records and not data.problems:
        raise DataFileError(f"{path.name} holds no examples")
    return data


def write(data: DataFile, records: list[dict], path: str | Path) -> Path:
    """Write ``records`` (rows of ``data``, possibly changed) to ``path`` in ``data``'s
    container and schema, atomically."""
    path = Path(path)
    if data.container == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return write_text(text, path)
    if data.container == "json":
        return write_text(json.dumps(records, ensure_ascii=False, indent=2) + "\n", path)
    if data.container == "csv":
        columns = list(records[0]) if records else list(data.schema or [])
        return write_table(pd.DataFrame.from_records(records, columns=columns), path)
    if data.container == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.Table.from_pylist(records, schema=data.schema)
        return write_atomically(path, lambda tmp: pq.write_table(table, tmp))
    import datasets
    ds = datasets.Dataset.from_list(records, features=data.schema)
    return write_folder(path, lambda tmp: ds.save_to_disk(str(tmp)))


def _decode(raw: bytes, name: str, line: int | None = None) -> str:
    """``raw`` as UTF-8 text; else an error naming the line and column of the first bad byte
    (``line`` given: ``raw`` is that line; else the whole file)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        start = raw.rfind(b"\n", 0, err.start) + 1
        number = line if line is not None else raw.count(b"\n", 0, err.start) + 1
        raise DataFileError(f"{name}: line {number} is not UTF-8 text (byte "
                            f"0x{raw[err.start]:02x} at column {err.start - start + 1}); save "
                            "the file as UTF-8") from None


def _read_jsonl(path: Path) -> DataFile:
    records, rows, problems = [], [], []
    with path.open("rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataFileError(
                    f"{path.name}: line {number} is longer than {MAX_LINE_BYTES // 2**20} MiB; "
                    "a JSON-lines file holds one example per line (a JSON array belongs in a "
                    ".json file)")
            text = _decode(raw, path.name, number)
            if number == 1:
                text = text.removeprefix("\ufeff")
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
            rows.append(number)
    return DataFile(path, "jsonl", records, rows, "line", problems)


def _read_json(path: Path) -> DataFile:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise DataFileError(f"{path.name} is larger than {MAX_JSON_BYTES // 2**30} GiB: a JSON "
                            "array is read whole; convert it to JSON lines (.jsonl)")
    text = _decode(path.read_bytes(), path.name).removeprefix("\ufeff")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFileError(f"{path.name}: not valid JSON at line {err.lineno}, column "
                            f"{err.colno} ({err.msg})") from None
    if not isinstance(value, list):
        raise DataFileError(f"{path.name}: expected a JSON array of examples, got a "
                            f"{type(value).__name__} (JSON lines belong in a .jsonl file)")
    problems = [f"item {i}: expected a JSON object, got {type(v).__name__}"
                for i, v in enumerate(value, 1) if not isinstance(v, dict)]
    keep = [(i, v) for i, v in enumerate(value, 1) if isinstance(v, dict)]
    return DataFile(path, "json", [v for _, v in keep], [i for i, _ in keep], "item", problems)


def _read_csv(path: Path) -> DataFile:
    _decode(path.read_bytes(), path.name)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path.name} holds no examples") from None
    except pd.errors.ParserError as err:
        raise DataFileError(f"{path.name}: not a readable CSV file ({err})") from err
    records = raw.to_dict("records")
    for record in records:           # CSV is flat: several answers are joined with "|"
        if "answers" in record:
            record["answers"] = [a.strip() for a in record["answers"].split("|") if a.strip()]
    return DataFile(path, "csv", records, list(range(2, len(raw) + 2)), "line", [],
                    schema=list(raw.columns))


def _read_parquet(path: Path) -> DataFile:
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataFileError(f"{path.name}: not a readable parquet file ({err})") from err
    return DataFile(path, "parquet", table.to_pylist(), list(range(1, table.num_rows + 1)),
                    "row", [], schema=table.schema)


def _read_hf(path: Path) -> DataFile:
    import datasets
    marks = ("state.json", "dataset_dict.json")
    if not any((path / m).is_file() for m in marks):
        raise DataFileError(f"{path}: a folder, but not a Hugging Face dataset saved with "
                            "save_to_disk (no state.json or dataset_dict.json)")
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:  # a damaged folder raises several types
        raise DataFileError(f"{path}: not a readable Hugging Face dataset ({err})") from err
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataFileError(f"{path} is a DatasetDict without a 'train' split (splits: "
                                f"{sorted(ds)}); pass one split's folder, e.g. "
                                f"{path / sorted(ds)[0]}")
        ds = ds["train"]
    if len(ds) == 0:
        raise DataFileError(f"{path} holds no examples")
    return DataFile(path, "hf", ds.to_list(), list(range(1, len(ds) + 1)), "row", [],
                    schema=ds.features)

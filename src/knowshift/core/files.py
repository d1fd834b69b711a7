"""Atomic writes: every result file appears whole or not at all, so an interrupted run never
leaves a half-written table that a resumed run would trust."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def write_atomically(path: str | Path, write) -> Path:
    """Write the file ``path`` through ``write(tmp)`` to a temporary sibling, then move it into
    place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_folder(path: str | Path, write) -> Path:
    """Write the folder ``path`` through ``write(tmp)`` into a temporary sibling folder, then
    move it into place, replacing an older one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        write(tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove what interrupted writes left under ``folder``: the temporary siblings of
    :func:`write_atomically` and :func:`write_folder` (``.<name>.<random>.tmp``), which a
    process killed mid-write (SIGKILL, a preempted job) cannot remove itself. Call it only
    while nothing writes there. Returns what was removed."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp"), reverse=True):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return write_atomically(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def write_json(obj: Any, path: str | Path) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return write_atomically(Path(path), lambda tmp: tmp.write_text(text + "\n"))


def write_text(text: str, path: str | Path) -> Path:
    return write_atomically(Path(path), lambda tmp: tmp.write_text(text))


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table in the format its suffix names: ``.parquet``, ``.csv`` (list cells joined
    with ``|``) or ``.jsonl`` (one JSON object per line)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return write_parquet(df, path)
    if path.suffix == ".csv":
        flat = df.apply(lambda col: col.map(lambda v: "|".join(map(str, v))
                                            if isinstance(v, (list, tuple)) else v))
        return write_atomically(path, lambda tmp: flat.to_csv(tmp, index=False))
    if path.suffix == ".jsonl":
        return write_atomically(path, lambda tmp: df.to_json(tmp, orient="records", lines=True,
                                                    force_ascii=False))
    raise ValueError(f"cannot write a table as {path.suffix!r}")


def save_figure(fig, path_stem: str | Path) -> None:
    """Save a matplotlib figure as PNG and SVG next to each other (``stem.png``, ``stem.svg``).
    Returns nothing, so a notebook cell that ends with it shows the figure and no paths."""
    stem = Path(path_stem)
    for ext in ("png", "svg"):
        write_atomically(stem.with_suffix(f".{ext}"), lambda tmp, ext=ext: fig.savefig(
            tmp, format=ext, dpi=120, bbox_inches="tight"))


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts, used to key caches by model, data and config."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

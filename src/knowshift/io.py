"""Atomic writes: every result file appears whole or not at all, so an interrupted run never
leaves a half-written table that a resumed run would trust."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _atomic(path: Path, write) -> Path:
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


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return _atomic(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def write_json(obj: Any, path: str | Path) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return _atomic(Path(path), lambda tmp: tmp.write_text(text + "\n"))


def write_text(text: str, path: str | Path) -> Path:
    return _atomic(Path(path), lambda tmp: tmp.write_text(text))


def save_figure(fig, path_stem: str | Path) -> list[Path]:
    """Save a matplotlib figure as PNG and SVG next to each other (``stem.png``, ``stem.svg``)."""
    stem = Path(path_stem)
    out = []
    for ext in ("png", "svg"):
        target = stem.with_suffix(f".{ext}")
        out.append(_atomic(target, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=120,
                                                                    bbox_inches="tight")))
    return out


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts, used to key caches by model, data and config."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

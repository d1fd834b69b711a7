"""What the book's reader is told about how its run was made: the execution statistics of each
chapter (as QuantEcon's lectures give them) and the run's result tables as one download."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path

import pandas as pd

from ..core.layout import STAGES, RunFolder
from ..engine import host
from .findings import to_markdown


def _duration(seconds: float | None) -> str:
    if seconds is None or pd.isna(seconds):
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m" if hours else f"{minutes} m {secs:02d} s" if minutes \
        else f"{secs} s"


def _papermill(notebook: Path) -> dict:
    """The run record papermill keeps in an executed notebook (start, end, duration)."""
    try:
        return json.loads(notebook.read_text()).get("metadata", {}).get("papermill", {})
    except (OSError, ValueError):
        return {}


def statistics(run_dir: str | Path) -> pd.DataFrame:
    """One row per stage: when its notebook ran, how long it took, and on what (precision,
    device, CPU and libraries, from the stage's stamp)."""
    run = RunFolder(run_dir)
    rows = []
    for stage in STAGES:
        record = _papermill(run.notebook(stage.name))
        stamp = run.stamp_record(stage.name) or {}
        built = stamp.get("built", {})
        end = record.get("end_time")
        rows.append({
            "chapter": f"{stage.notebook[:2].lstrip('0')}. {stage.name}",
            "ran (UTC)": (datetime.fromisoformat(end).strftime("%Y-%m-%d %H:%M")
                          if end else "–"),
            "wall time": _duration(record.get("duration")),
            "seconds": record.get("duration"),
            "precision": (f"{built['precision']} on {built.get('gpu') or built.get('device')}"
                          if "precision" in built else "– (no model)"),
            "host": (f"{built.get('cpu', '?')} ({', '.join(built.get('cpu_flags', [])) or 'no AVX-512/AMX'})"
                     if built else "–"),
            "commit": str(built.get("commit", "–"))[:12]})
    return pd.DataFrame(rows)


def statistics_markdown(run_dir: str | Path) -> str:
    """The execution statistics page's table and its total, with the build line."""
    table = statistics(run_dir)
    total = table["seconds"].dropna().sum()
    stamps = [RunFolder(run_dir).stamp_record(s.name) or {} for s in STAGES]
    libraries = next((host.describe(s["built"]) for s in stamps
                      if s.get("built", {}).get("precision")), "not recorded")
    shown = table.drop(columns="seconds")
    for column in ("host", "commit"):       # named once below when every chapter shares it
        if shown[column].replace("–", pd.NA).dropna().nunique() <= 1:
            shown = shown.drop(columns=column)
    return (to_markdown(shown) + "\n\n"
            f"**In all:** {_duration(total)} of notebook execution. "
            f"**The model stages were built with:** {libraries}.")


def archive(run_dir: str | Path, target: Path, extra: dict[str, pd.DataFrame] | None = None
            ) -> Path:
    """Every result table of the run (and ``extra`` tables) as CSV in one zip at ``target``."""
    run = RunFolder(run_dir)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for stage in STAGES:
            for name, rel in stage.products.items():
                path = run.root / rel
                if not path.is_file() or path.suffix != ".parquet":
                    continue
                frame = pd.read_parquet(path)
                z.writestr(f"{stage.name}/{name}.csv", frame.to_csv(index=False))
        for name, frame in (extra or {}).items():
            z.writestr(f"{name}.csv", frame.to_csv(index=False))
        z.writestr("README.txt", "The result tables of the knowshift run "
                   f"'{run.root.name}', one CSV per product of each stage (the run folder's "
                   "Parquet files). Shares are 0-1; see the book's method chapter.\n")
    return target

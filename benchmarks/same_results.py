"""Are two run folders' result tables the same? For a change that should move no number (a
presentation change, a refactoring): run the same profile from fresh clones of the commit
before and after, then

    .venv/bin/python benchmarks/same_results.py runs-before/workshop runs-after/workshop

Every product of every stage (core.layout.STAGES) is read from both folders and compared
exactly, value for value, except the columns that time the work (``*_seconds``), which no two
runs share; the audit's reports are compared as text with each run's own folder path and its embedded
figures (drawn, not computed) masked. Prints one line per product and exits 1 if any differs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from knowshift.core.layout import STAGES


FIGURE = re.compile(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+")


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)


def compare(before: Path, after: Path) -> list[tuple[str, str]]:
    lines = []
    for stage in STAGES:
        for name, rel in stage.products.items():
            a, b = before / rel, after / rel
            if not a.is_file() and not b.is_file():
                continue
            if not (a.is_file() and b.is_file()):
                lines.append((f"{stage.name}/{name}", "DIFFERS: present in one run only"))
                continue
            if a.suffix not in (".parquet", ".jsonl"):
                # a report names its own files: compare with each run's folder as "<run>"
                # and its figures (drawn, not computed) as <figure>
                def text(path: Path, root: Path) -> str:
                    return FIGURE.sub("<figure>", path.read_text().replace(str(root.resolve()),
                                                                           "<run>"))
                same = text(a, before) == text(b, after)
                lines.append((f"{stage.name}/{name}", "same text (folder paths and embedded "
                              "figures masked)" if same else "DIFFERS (text, folder paths and "
                              "embedded figures masked)"))
                continue
            x, y = read(a), read(b)
            timed = [c for c in x.columns if c.endswith("_seconds")]
            x, y = x.drop(columns=timed), y.drop(columns=timed, errors="ignore")
            try:
                pd.testing.assert_frame_equal(x, y, check_exact=True)
                lines.append((f"{stage.name}/{name}", f"same ({len(x)} rows x {x.shape[1]} "
                              f"columns" + (f"; ignored {', '.join(timed)}" if timed else "")
                              + ")"))
            except AssertionError as err:
                lines.append((f"{stage.name}/{name}",
                              "DIFFERS: " + str(err).splitlines()[0][:200]))
    return lines


if __name__ == "__main__":
    lines = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    for product, verdict in lines:
        print(f"{product:32s} {verdict}")
    sys.exit(1 if any(v.startswith("DIFFERS") for _, v in lines) else 0)

"""Stage 8, the audit's walk-through: the study's run audited as a user would audit their own
file. It sits above both the study (it cuts a slice of the run's fact set) and the audit (it
runs it), so it lives on top beside the pipeline, not inside the audit tool."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .audit.judge import run
from .core.errors import ParameterError
from .core.files import write_table
from .core.layout import RunFolder
from .engine import work
from .study.offline_facts import relation_names
from .study.slick import SlickConfig


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


def run_stage(run_dir: str | Path, params, progress: bool = True) -> dict:
    """Stage 8: audit a held-out slice of the run's fact set as a user would audit their own
    file (``topic`` column, no relation labels), with the run's own regression for the
    expected effect; writes the audit's files into the run's audit folder."""
    p = params.for_stage("audit")
    data = write_heldout_slice(run_dir, p.audit_size, p.seed)
    with work.recording() as done:
        report = run(data, p.model, p.device, SlickConfig.from_params(p),
                     RunFolder(run_dir).audit_dir(), group_by=["topic"], study=run_dir,
                     progress=progress)
    work.write(done, RunFolder(run_dir).work("audit"))
    return report

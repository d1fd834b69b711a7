"""What built a run: the machine, the precision that really ran and the software, recorded in
each stage's stamp beside its key (``built``; never part of it) and stated by the book's front
and results pages, since the numbers depend on them (``precision: auto`` is bf16 on a CPU with
native bf16 and fp32 elsewhere). Reading a record imports no torch (the analysis stages read
it)."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from ..core.layout import REPOSITORY
from ..core.provenance import _version

# CPU features that decide precision and speed (x86: bf16 and AMX; Arm: bf16).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "bf16")
LIBRARIES = ("torch", "transformers", "peft")


@lru_cache(maxsize=1)
def cpu() -> dict:
    """The CPU's model name and which of :data:`CPU_FLAGS` it has (Linux ``/proc/cpuinfo``;
    elsewhere the platform's processor string and no flags)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and value.strip():
                name = value.strip()
            elif key in ("flags", "features"):
                flags |= set(value.split())
    except OSError:
        pass
    return {"cpu": name, "cpu_flags": [f for f in CPU_FLAGS if f in flags]}


@lru_cache(maxsize=1)
def commit() -> str:
    """The repository's commit (short), with ``+local changes`` when tracked files differ
    from it; the package version when knowshift is not run from a git checkout."""
    def git(*args) -> str:
        return subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return f"knowshift {_version('knowshift')} (not a git checkout)"
    return head + (" +local changes" if dirty else "")


def built(params: dict) -> dict:
    """The record for a stage whose parameters are ``params`` (plain values): the device and
    precision it resolves to here (for a stage that loads a model), the CPU, the libraries,
    Python and the commit."""
    record = {}
    if "precision" in params:
        import torch

        from . import models
        device = params.get("device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        record |= {"device": device,
                   "precision": models.resolve_precision(device, params["precision"])}
        if device == "cuda" and torch.cuda.is_available():
            record["gpu"] = torch.cuda.get_device_name(0)
    return record | cpu() | {lib: _version(lib) for lib in LIBRARIES} | {
        "python": platform.python_version(), "commit": commit(), "platform": sys.platform}


def describe(record: dict) -> str:
    """One line for a reader: precision and device, CPU and its flags, libraries, commit."""
    if not record:
        return "not recorded (a run made before knowshift recorded it)"
    parts = []
    if "precision" in record:
        parts.append(f"{record['precision']} on {record.get('gpu') or record['device']}")
    flags = ", ".join(record.get("cpu_flags", [])) or "none of " + "/".join(CPU_FLAGS)
    parts.append(f"CPU {record.get('cpu', '?')} ({flags})")
    parts.append(", ".join(f"{lib} {record[lib]}" for lib in LIBRARIES if lib in record)
                 + f", Python {record.get('python', '?')}")
    parts.append(f"commit {record.get('commit', '?')}")
    return "; ".join(parts)

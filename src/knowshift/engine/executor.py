"""Where a stage's independent pieces of work run: in the stage's own process (``local``, the
default), in N worker processes on this machine (one per GPU, or sharing the CPU), or as SLURM
jobs (one job array, through submitit).

The executor is a setting of the machine, never of the study: it is read from
``$KNOWSHIFT_EXECUTOR`` (``knowshift run --executor``), changes no result and enters no stamp.
A piece is a module-level function that writes one cached result file atomically (a
fine-tuning run, a share of SliCK's prompt blocks); a stage hands over the pieces whose file is
missing, :func:`run_pieces` runs them and shows progress across the jobs, then the stage reads
the files as it always has. A piece that fails or is killed leaves no file: the stage lists the
failed pieces with their logs and fails with the first job's error, and a rerun submits only
those. Jobs read and write the run folder and the model cache (``$KNOWSHIFT_CACHE``), so both
must be on a filesystem every job sees."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import ParameterError, StageFailedError
from ..core.files import remove_temporaries, write_json
from ..core.progress import Progress
from ..core.progress import read as read_progress

ENV = "KNOWSHIFT_EXECUTOR"
KINDS = ("local", "workers", "slurm")
# Fault injection for the executor's tests: the job of the piece named here kills itself with
# SIGKILL after its first unit of progress (an epoch, a block), as a preempted job dies.
KILL_ENV = "KNOWSHIFT_KILL_AFTER_FIRST_STEP"
# A job that has left the SLURM queue without a result is counted as dead after this long (its
# result file may take a moment to appear on a shared filesystem).
VANISHED_GRACE_S = 15.0
# The keys a spec may set, per kind, and what each holds.
KEYS = {
    "jobs": "jobs at once (workers: processes; slurm: the job array's parallelism)",
    "gpus": "workers: the GPU ids to give one each, e.g. gpus=0,1,2,3; slurm: GPUs per job",
    "cpus": "slurm: CPUs per job",
    "mem": "slurm: memory per job in GB",
    "time": "minutes a job may run before it is stopped (default 1440)",
    "partition": "slurm: the partition", "account": "slurm: the account",
    "qos": "slurm: the quality of service", "constraint": "slurm: a node constraint",
}
_ALLOWED = {"local": set(), "workers": {"jobs", "gpus", "time"}, "slurm": set(KEYS)}


@dataclass(frozen=True)
class Executor:
    """A parsed executor spec: ``local``, ``workers jobs=N [gpus=0,1]`` or ``slurm jobs=N
    [partition=P gpus=G cpus=C mem=GB time=MIN account=A qos=Q constraint=C]``."""
    kind: str = "local"
    jobs: int = 1
    gpus: tuple[int, ...] = ()          # workers: GPU ids, one per worker
    gpus_per_job: int = 0               # slurm
    cpus: int | None = None
    mem_gb: float | None = None
    time_min: int = 1440
    slurm: dict = field(default_factory=dict)     # partition, account, qos, constraint

    @property
    def local(self) -> bool:
        return self.kind == "local"

    def device_for(self, device: str) -> str:
        """The device the jobs will run on, for resolving ``precision: auto`` in the stage:
        ``auto`` is CUDA where the jobs are given GPUs, else as the stage's own device."""
        gets_gpus = (self.kind == "slurm" and self.gpus_per_job) or (
            self.kind == "workers" and self.gpus)
        return "cuda" if device == "auto" and gets_gpus else device

    def describe(self) -> str:
        if self.local:
            return "local (in the stage's process)"
        where = (f" on GPUs {','.join(map(str, self.gpus))}" if self.gpus else "")
        return f"{self.kind}, {self.jobs} jobs at once{where}"


def parse(spec: str | None) -> Executor:
    """The executor of ``spec`` (None or empty: local); a bad spec is refused in one line."""
    words = (spec or "local").split()
    kind, pairs = words[0], words[1:]
    if kind not in KINDS:
        raise ParameterError(f"unknown executor {kind!r}; executors are {list(KINDS)} "
                             "(e.g. 'workers jobs=4', 'slurm jobs=16 partition=gpu gpus=1')")
    given = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value:
            raise ParameterError(f"executor setting {pair!r} is not NAME=VALUE")
        if name not in _ALLOWED[kind]:
            raise ParameterError(f"executor {kind} takes no setting {name!r}; it takes "
                                 f"{sorted(_ALLOWED[kind]) or 'none'} ({_known_keys()})")
        given[name] = value

    def number(name, cast=int, least=1):
        try:
            value = cast(given[name])
        except ValueError:
            raise ParameterError(f"executor setting {name}={given[name]!r} is not a "
                                 f"{'whole ' if cast is int else ''}number") from None
        if value < least:
            raise ParameterError(f"executor setting {name} must be at least {least}")
        return value

    out = {"kind": kind}
    for name, key, cast in (("jobs", "jobs", int), ("time", "time_min", int),
                            ("cpus", "cpus", int), ("mem", "mem_gb", float)):
        if name in given:
            out[key] = number(name, cast)
    if "gpus" in given:
        if kind == "workers":
            try:
                out["gpus"] = tuple(int(g) for g in given["gpus"].split(","))
            except ValueError:
                raise ParameterError(f"executor setting gpus={given['gpus']!r} is not a list "
                                     "of GPU ids like 0,1,2,3") from None
        else:
            out["gpus_per_job"] = number("gpus", least=0)
    out["slurm"] = {k: given[k] for k in ("partition", "account", "qos", "constraint")
                    if k in given}
    if kind == "workers":
        out.setdefault("jobs", len(out["gpus"]) if out.get("gpus") else 0)
        if not out["jobs"]:
            raise ParameterError("executor workers needs jobs=N (or gpus=... to run one "
                                 "worker per GPU)")
        if out.get("gpus") and out["jobs"] > len(out["gpus"]):
            raise ParameterError(f"executor workers: jobs={out['jobs']} is more than the "
                                 f"{len(out['gpus'])} GPUs given (one worker per GPU)")
    if kind == "slurm":
        _check_slurm()
    return Executor(**out)


def check_workers(executor: Executor, device: str) -> None:
    """Refuse workers that would be given no GPU where the stages run on CUDA (``device``, as
    resolved): they would run on the CPU, silently and many times slower."""
    if executor.kind == "workers" and not executor.gpus and device.startswith("cuda"):
        raise ParameterError("executor workers without gpus= gives its workers no GPU, and the "
                             "stages run on CUDA here: name the GPUs, one worker each (e.g. "
                             "'workers gpus=0,1'), or set device: cpu")
    if executor.kind == "workers" and executor.gpus:
        worker_devices(executor.gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))


def worker_devices(gpus: tuple[int, ...], visible: str | None) -> list[str]:
    """What each worker's ``CUDA_VISIBLE_DEVICES`` holds: GPU ``g`` is the ``g``-th device this
    process sees, so an inherited ``CUDA_VISIBLE_DEVICES`` (``visible``) is respected (gpus=0,1
    under ``2,3`` are devices 2 and 3); where none is set, the ids themselves."""
    if visible is None:
        return [str(g) for g in gpus]
    seen = [d.strip() for d in visible.split(",") if d.strip()]
    outside = [g for g in gpus if g >= len(seen)]
    if outside:
        raise ParameterError(f"executor workers: GPU {outside[0]} is not among the {len(seen)} "
                             f"this process sees (CUDA_VISIBLE_DEVICES={visible!r}); ids count "
                             "those, from 0")
    return [seen[g] for g in gpus]


def _known_keys() -> str:
    return "; ".join(f"{k}: {v}" for k, v in KEYS.items())


def _check_slurm() -> None:
    try:
        subprocess.run(["sbatch", "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        raise ParameterError("executor slurm needs SLURM's sbatch on this machine (run "
                             "knowshift on a login node of the cluster)") from None


def current() -> Executor:
    """The executor ``$KNOWSHIFT_EXECUTOR`` names (local if unset)."""
    return parse(os.environ.get(ENV))


@dataclass(frozen=True)
class Piece:
    """One piece of a stage's work: ``run(*args, tick=...)`` writes its result file(s) and
    calls ``tick(n)`` as it makes ``n`` units of progress (``steps`` in all)."""
    name: str
    run: Callable
    args: tuple
    steps: int


def job(piece: Piece, progress_file: str) -> dict:
    """What a job runs: the piece, with its progress written to ``progress_file``, and the
    record of where and when it ran (the piece's return value under ``result``)."""
    started, error = time.time(), None
    kill = os.environ.get(KILL_ENV) == piece.name
    with Progress(progress_file, piece.steps, piece.name, "steps", enabled=False) as bar:
        def tick(n: int = 1) -> None:
            bar.update(n)
            if kill:
                bar.close()
                os.kill(os.getpid(), signal.SIGKILL)
        try:
            result = piece.run(*piece.args, tick=tick)
        except Exception as err:                # the stage fails with it, as it would locally
            traceback.print_exc()
            result, error = None, f"{type(err).__name__}: {err}"
    return {"piece": piece.name, "host": socket.gethostname(), "pid": os.getpid(),
            "started": started, "ended": time.time(), "result": result, "error": error}


def run_pieces(pieces: list[Piece], executor: Executor, jobs_dir: Path, bar: Progress,
               scratch: list[Path] = ()) -> list[dict]:
    """Run ``pieces`` on ``executor``, their progress added to ``bar`` (whose total counts
    their steps), and return what each piece returned, in the order of ``pieces``. Logs and
    the job record (``jobs.json``: piece, job id, host, start, end, state) go to
    ``jobs_dir``. Temporary files a dead job left in the folders ``scratch`` are removed once
    no job runs. Raises :class:`StageFailedError` listing the failed pieces and their logs."""
    if not pieces:
        return []
    import submitit
    jobs_dir = Path(jobs_dir)
    shutil.rmtree(jobs_dir, ignore_errors=True)     # the last submission's logs and records
    progress_dir = jobs_dir / "progress"
    files = [str(progress_dir / f"{i:04d}.json") for i in range(len(pieces))]
    runner = (_Workers(submitit, executor, jobs_dir) if executor.kind == "workers"
              else _Slurm(submitit, executor, jobs_dir))
    start_done, records, failures = bar.done, {}, {}
    try:
        runner.start(pieces, files)
        while len(records) + len(failures) < len(pieces):
            time.sleep(1.0)
            for i, state in runner.poll(set(records) | set(failures)):
                if state == "done":
                    try:
                        record = runner.result(i)
                    except Exception as err:        # the job could not even start the piece
                        record = {"error": _last_line(err)}
                    if record.get("error"):
                        failures[i] = record["error"]
                    else:
                        records[i] = record
                else:
                    failures[i] = state
            done = sum(pieces[i].steps for i in records)
            partial = sum(min(p["done"], pieces[i].steps) for i in range(len(pieces))
                          if i not in records and (p := read_progress(files[i])))
            counts = runner.counts(set(records) | set(failures))
            bar.set(start_done + done + partial,
                    f"jobs: {len(records)} done, {counts['running']} running, "
                    f"{counts['queued']} queued, {len(failures)} failed")
    except BaseException:
        runner.cancel()
        raise
    finally:
        runner.wait_all()
        for folder in scratch:
            remove_temporaries(folder)
        write_json([{"piece": p.name, "job": runner.job_id(i), "log": str(runner.log(i)),
                     "state": "done" if i in records else failures.get(i, "not run"),
                     **{k: records[i][k] for k in ("host", "pid", "started", "ended")
                        if i in records}} for i, p in enumerate(pieces)],
                   jobs_dir / "jobs.json")
    if failures:
        listed = "\n".join(f"  {pieces[i].name}: {why} (log: {runner.log(i)})"
                           for i, why in sorted(failures.items()))
        raise StageFailedError(f"{len(failures)} of {len(pieces)} pieces failed on "
                               f"{executor.describe()}; rerun to submit only these:\n{listed}")
    return [records[i]["result"] for i in range(len(pieces))]


def _last_line(err: Exception) -> str:
    """What submitit reports of a job that failed outside the piece (e.g. it could not unpickle
    it): the last line of the job's traceback."""
    trace = str(err).split("----------------------")
    lines = [line for line in (trace[1] if len(trace) > 2 else str(err)).splitlines()
             if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


class _Runner:
    """What both runners keep: the submitted jobs by piece index."""
    jobs: dict

    def result(self, i: int) -> dict:
        return self.jobs[i].result()

    def job_id(self, i: int):
        return self.jobs[i].job_id if i in self.jobs else None

    def log(self, i: int) -> Path | None:
        return Path(self.jobs[i].paths.stderr) if i in self.jobs else None


class _Workers(_Runner):
    """N worker processes on this machine (submitit's local executor), each given one GPU of
    ``gpus`` when there are any; at most N run at once."""

    def __init__(self, submitit, executor: Executor, folder: Path):
        self.submitit, self.executor, self.folder = submitit, executor, folder
        self.jobs: dict[int, object] = {}
        self.queue: list[int] = []
        self.free = (worker_devices(executor.gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
                     if executor.gpus else [None] * executor.jobs)
        self.slot: dict[int, object] = {}

    def start(self, pieces, files) -> None:
        self.pieces, self.files = pieces, files
        self.queue = list(range(len(pieces)))
        self._fill()

    def _fill(self) -> None:
        while self.queue and self.free:
            i, gpu = self.queue.pop(0), self.free.pop(0)
            ex = self.submitit.LocalExecutor(folder=self.folder)
            # submitit numbers GPUs from 0 whatever this process sees: the device is set here
            ex.update_parameters(timeout_min=self.executor.time_min, gpus_per_node=0,
                                 setup=[f"export CUDA_VISIBLE_DEVICES={shlex.quote(gpu or '')}"])
            self.jobs[i], self.slot[i] = ex.submit(job, self.pieces[i], self.files[i]), gpu

    def poll(self, known: set[int]):
        finished = [(i, _local_state(j)) for i, j in list(self.jobs.items())
                    if i not in known and j.done()]
        for i, _ in finished:
            self.free.append(self.slot.pop(i))
        self._fill()
        return finished

    def counts(self, known: set[int]) -> dict:
        return {"running": sum(1 for i in self.jobs if i not in known),
                "queued": len(self.queue)}

    def cancel(self) -> None:
        self.queue.clear()
        for j in self.jobs.values():
            if not j.done():
                j.cancel(check=False)

    def wait_all(self) -> None:
        for j in self.jobs.values():
            while not j.done():
                time.sleep(0.2)


def _local_state(j) -> str:
    """A local job that ended: done when its result is there (a Python error is a result that
    raises), else it died."""
    if j.paths.result_pickle.exists():
        return "done"
    return "died before writing its result (killed, or out of memory)"


class _Slurm(_Runner):
    """One SLURM job array through submitit; a job that leaves the queue without a result
    (killed, preempted, out of memory or time) is failed."""

    def __init__(self, submitit, executor: Executor, folder: Path):
        self.submitit, self.executor, self.folder = submitit, executor, folder
        self.jobs: dict[int, object] = {}
        self.gone_since: dict[int, float] = {}
        self.states: dict[str, str] = {}

    def start(self, pieces, files) -> None:
        ex = self.submitit.SlurmExecutor(folder=self.folder, max_num_timeout=0)
        e = self.executor
        extra = {k: v for k, v in e.slurm.items() if k != "partition"}
        ex.update_parameters(
            job_name="knowshift", time=e.time_min, array_parallelism=e.jobs,
            **({"partition": e.slurm["partition"]} if "partition" in e.slurm else {}),
            **({"gpus_per_node": e.gpus_per_job} if e.gpus_per_job else {}),
            **({"cpus_per_task": e.cpus} if e.cpus else {}),
            **({"mem": f"{int(e.mem_gb * 1024)}M"} if e.mem_gb else {}),
            **({"additional_parameters": extra} if extra else {}))
        with ex.batch():
            self.jobs = dict(enumerate(ex.submit(job, p, f) for p, f in zip(pieces, files)))

    def _queue(self) -> dict[str, str]:
        """Job id -> state of this array's jobs still in the queue (``squeue`` needs no
        accounting database, unlike ``sacct``)."""
        ids = {j.job_id.split("_")[0] for j in self.jobs.values()}
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(sorted(ids))],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return {j.job_id: "UNKNOWN" for j in self.jobs.values()}   # ask at the next poll
        return dict(line.split() for line in out.stdout.splitlines() if line.strip())

    def poll(self, known: set[int]):
        self.states = self._queue()
        finished, now = [], time.monotonic()
        for i, j in self.jobs.items():
            if i in known:
                continue
            if j.paths.result_pickle.exists():
                finished.append((i, "done"))
            elif j.job_id not in self.states:
                since = self.gone_since.setdefault(i, now)
                if now - since > VANISHED_GRACE_S:
                    finished.append((i, "left the queue without a result (killed, preempted, "
                                        "or out of time or memory)"))
            else:
                self.gone_since.pop(i, None)
        return finished

    def counts(self, known: set[int]) -> dict:
        states = [self.states.get(j.job_id, "") for i, j in self.jobs.items()
                  if i not in known]
        return {"running": sum(s in ("RUNNING", "COMPLETING") for s in states),
                "queued": sum(s not in ("RUNNING", "COMPLETING") for s in states)}

    def cancel(self) -> None:
        ids = sorted({j.job_id.split("_")[0] for j in self.jobs.values()})
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60)

    def wait_all(self) -> None:
        deadline = time.monotonic() + 120
        while self.jobs and time.monotonic() < deadline and self._queue():
            time.sleep(1.0)


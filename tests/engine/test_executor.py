"""The executor: pieces of a stage as worker processes (submitit's local executor) or SLURM jobs
(a one-node cluster of the tests' own, started by the slurm_cluster fixture), their faults, and
the smoke profile through it giving the tables of a run in one process."""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from knowshift import pipeline
from knowshift.core.errors import ParameterError, StageFailedError
from knowshift.core.files import write_atomically
from knowshift.core.layout import RunFolder
from knowshift.core.progress import Progress
from knowshift.engine import executor

# the pieces below are pickled by value: the jobs cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _nap(seconds, path, tick):
    """A piece: sleep, then write a file atomically, ticking twice."""
    tick(1)
    time.sleep(seconds)
    write_atomically(path, lambda tmp: tmp.write_text(f"slept {seconds}"))
    tick(1)
    return {"slept": seconds}


def _visible(tick):
    """A piece: the GPUs its job was given."""
    tick(1)
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def _refuses(row, tick):
    raise ParameterError(f"row {row} has no answer")


def _dies_mid_write(path, tick):
    """Starts a write as write_atomically does, then dies (see executor.KILL_ENV)."""
    tmp = Path(path).parent / f".{Path(path).name}.abc123.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("half")
    tick(1)
    write_atomically(path, lambda t: t.write_text("whole"))
    return {}


def _bar():
    return Progress(None, 4, "test", "steps", enabled=False)


# ------------------------------------------------------------------------------- the spec
@pytest.mark.parametrize("spec, expected", [
    ("local", executor.Executor()),
    ("", executor.Executor()),
    ("workers jobs=3", executor.Executor("workers", jobs=3)),
    ("workers gpus=0,1", executor.Executor("workers", jobs=2, gpus=(0, 1))),
    ("workers jobs=1 gpus=2,3 time=30", executor.Executor("workers", jobs=1, gpus=(2, 3),
                                                           time_min=30)),
])
def test_an_executor_spec_reads_as_written(spec, expected):
    assert executor.parse(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("kubernetes", "unknown executor 'kubernetes'"),
    ("workers", "workers needs jobs=N"),
    ("workers jobs=0", "jobs must be at least 1"),
    ("workers jobs=two", "jobs='two' is not a whole number"),
    ("workers jobs=3 gpus=0,1", "more than the 2 GPUs"),
    ("workers jobs=2 partition=gpu", "workers takes no setting 'partition'"),
    ("workers gpus=a,b", "not a list of GPU ids"),
    ("local jobs=2", "local takes no setting 'jobs'"),
    ("workers jobs", "'jobs' is not NAME=VALUE"),
])
def test_a_bad_executor_spec_is_refused_in_one_line(spec, message):
    with pytest.raises(ParameterError, match=message):
        executor.parse(spec)


def test_a_bad_executor_is_refused_before_any_stage_runs(tmp_path):
    with pytest.raises(ParameterError, match="unknown executor"):
        pipeline.run("smoke", tmp_path / "run", executor_spec="cluster jobs=2", log=lambda m: 0)
    assert not (tmp_path / "run" / ".stamps").exists()


def test_the_executor_is_in_no_stamp():
    """It chooses where work runs, never what it computes."""
    from knowshift.core.provenance import NOT_FOLLOWED, code_key
    assert "engine.executor" in NOT_FOLLOWED
    assert "engine.executor" not in code_key(["study.finetune", "study.slick"])["modules"]
    assert "study.finetune" in code_key(["study.finetune"])["modules"]


# ------------------------------------------------------------------------ local workers
def test_worker_jobs_run_side_by_side_and_return_in_order(tmp_path):
    pieces = [executor.Piece(f"nap {i}", _nap, (2.0, tmp_path / "out" / f"{i}.txt"), 2)
              for i in range(3)]
    bar = _bar()
    bar.total = 6
    results = executor.run_pieces(pieces, executor.parse("workers jobs=2"), tmp_path / "jobs",
                                  bar, scratch=[tmp_path / "out"])
    assert results == [{"slept": 2.0}] * 3
    assert bar.done == 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    record = json.loads((tmp_path / "jobs" / "jobs.json").read_text())
    assert [r["piece"] for r in record] == ["nap 0", "nap 1", "nap 2"]
    assert {r["state"] for r in record} == {"done"}
    spans = sorted((r["started"], r["ended"]) for r in record)
    assert spans[1][0] < spans[0][1]                  # the first two overlapped in time
    assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.5   # never more than two at once
    assert len({r["pid"] for r in record}) == 3


def test_workers_are_given_the_gpus_this_process_sees(tmp_path, monkeypatch):
    """GPU ids count the devices the caller sees: under an inherited CUDA_VISIBLE_DEVICES,
    gpus=0,1 are its first two; workers without gpus= see none."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    pieces = [executor.Piece(f"gpu {i}", _visible, (), 1) for i in range(2)]
    given = executor.run_pieces(pieces, executor.parse("workers gpus=0,1"), tmp_path / "a",
                                _bar())
    assert sorted(given) == ["5", "7"]
    assert executor.run_pieces(pieces[:1], executor.parse("workers jobs=1"), tmp_path / "b",
                               _bar()) == [""]
    with pytest.raises(ParameterError, match="GPU 2 is not among the 2 this process sees"):
        executor.check_workers(executor.parse("workers gpus=0,2"), "cuda")


def test_workers_without_gpus_are_refused_where_the_stages_run_on_cuda():
    with pytest.raises(ParameterError, match="workers without gpus= gives its workers no GPU"):
        executor.check_workers(executor.parse("workers jobs=4"), "cuda")
    executor.check_workers(executor.parse("workers jobs=4"), "cpu")
    assert executor.worker_devices((0, 1), None) == ["0", "1"]
    assert executor.worker_devices((1,), "GPU-aa, GPU-bb") == ["GPU-bb"]


def test_a_job_that_fails_on_bad_input_fails_with_its_own_error(tmp_path):
    pieces = [executor.Piece("fine", _nap, (0.1, tmp_path / "ok.txt"), 2),
              executor.Piece("row 7", _refuses, (7,), 1)]
    started = time.monotonic()
    with pytest.raises(StageFailedError) as err:
        executor.run_pieces(pieces, executor.parse("workers jobs=2"), tmp_path / "jobs", _bar())
    assert time.monotonic() - started < 60               # the error, not a timeout
    message = str(err.value)
    assert "1 of 2 pieces failed" in message and "rerun to submit only these" in message
    assert "row 7: ParameterError: row 7 has no answer" in message
    log = Path(message.split("(log: ")[1].split(")")[0])
    assert log.is_file() and "row 7 has no answer" in log.read_text()
    assert (tmp_path / "ok.txt").read_text() == "slept 0.1"      # the other piece finished


def test_a_killed_job_leaves_no_file_and_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(executor.KILL_ENV, "dies")
    out = tmp_path / "out"
    pieces = [executor.Piece("dies", _dies_mid_write, (out / "x.txt",), 1),
              executor.Piece("lives", _nap, (0.1, out / "y.txt"), 2)]
    with pytest.raises(StageFailedError, match="dies: died before writing its result"):
        executor.run_pieces(pieces, executor.parse("workers jobs=2"), tmp_path / "jobs", _bar(),
                            scratch=[out])
    assert sorted(p.name for p in out.iterdir()) == ["y.txt"]     # no x.txt, no temporary
    states = {r["piece"]: r["state"] for r in
              json.loads((tmp_path / "jobs" / "jobs.json").read_text())}
    assert states == {"dies": "died before writing its result (killed, or out of memory)",
                      "lives": "done"}


# ------------------------------------------------------------------------------- SLURM
# The cluster's daemons and the commands the executor (and submitit) call; `make slurm` installs
# them (Debian's slurm-wlm and munge).
SLURM_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
SLURM_CONF = """\
ClusterName=knowshift-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU={mem_per_cpu}
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation={folder}/slurmctld
SlurmdSpoolDir={folder}/slurmd
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
PlugStackConfig={folder}/plugstack.conf
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _program(name):
    """A SLURM or munge program's path (the daemons live in /usr/sbin), or None."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                    "/sbin"]))


def _free_ports(n):
    """n ports nothing listens on now, so that a SLURM already running here is not in the way."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ends_with_this_process():
    """Run in a daemon before it starts: it is sent SIGTERM when the test process ends, even
    killed, so no daemon outlives a session that could not tear down."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)        # PR_SET_PDEATHSIG


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster of the session's own: munged, slurmctld and slurmd on
    localhost, one partition `debug` with every CPU. Its configuration, key, sockets, state and
    logs all live in a temporary folder (nothing is written under /etc, /var or /run); SLURM_CONF
    points at its slurm.conf while the session runs, so sbatch, squeue and scancel reach it and
    no other cluster, on ports free when it starts. Its daemons are stopped at the end. Yields
    the folder."""
    missing = [name for name in SLURM_PROGRAMS if _program(name) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)} here: `make slurm` installs SLURM and munge")
    if os.geteuid() != 0:
        pytest.skip("starting the test's SLURM cluster needs root (its daemons run as "
                    "SlurmUser=root)")
    folder = tmp_path_factory.mktemp("slurm")
    if len(str(folder)) > 60:       # a UNIX socket's path has at most 107 bytes
        folder = Path(tempfile.mkdtemp(prefix="knowshift-slurm-"))
    for sub in ("munge", "slurmctld", "slurmd"):
        (folder / sub).mkdir()
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 2048
    cpus = os.cpu_count()
    ctld_port, slurmd_port = _free_ports(2)
    conf = folder / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname().split(".")[0], folder=folder,
                                      ctld_port=ctld_port, slurmd_port=slurmd_port, cpus=cpus,
                                      mem=mem, mem_per_cpu=mem // cpus))
    env = os.environ | {"SLURM_CONF": str(conf)}
    daemons = []

    def start(name, *args):
        with open(folder / f"{name}.out", "wb") as out:
            daemons.append(subprocess.Popen([_program(name), *args], stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=_ends_with_this_process))

    def logs():
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-2000:]
                         for p in sorted(folder.glob("*.out")) + sorted(folder.glob("*.log")))

    previous = os.environ.get("SLURM_CONF")
    try:
        # --force: munged refuses a socket under a folder that not everyone may enter (pytest's
        # are 0700); in the foreground it logs to its standard error (munged.out)
        start("munged", "--foreground", "--force", f"--key-file={key}",
              f"--socket={folder}/munge/munge.socket", f"--pid-file={folder}/munge/munged.pid",
              f"--log-file={folder}/munge/munged.log", f"--seed-file={folder}/munge/munged.seed")
        for _ in range(100):
            if (folder / "munge" / "munge.socket").exists() or daemons[0].poll() is not None:
                break
            time.sleep(0.1)
        start("slurmctld", "-D", "-f", str(conf))
        start("slurmd", "-D", "-f", str(conf))
        for _ in range(120):
            if any(d.poll() is not None for d in daemons):
                break
            states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                    text=True, env=env, timeout=30, check=False).stdout.split()
            if any(s in ("idle", "mixed", "allocated") for s in states):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the test's SLURM cluster did not come up in 60 s:\n{logs()}")
        if any(d.poll() is not None for d in daemons):
            pytest.fail(f"a daemon of the test's SLURM cluster stopped:\n{logs()}")
        os.environ["SLURM_CONF"] = str(conf)
        yield folder
    finally:
        # jobs left in the queue are cancelled (in this cluster: SLURM_CONF is its own), so no
        # slurmstepd outlives the session; then the daemons this fixture started, newest first
        if len(daemons) == 3 and daemons[1].poll() is None:
            subprocess.run(["scancel", "--partition=debug"], capture_output=True, env=env,
                           timeout=60, check=False)
            for _ in range(60):
                queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True,
                                       text=True, env=env, timeout=30, check=False)
                if queue.returncode or not queue.stdout.strip():
                    break
                time.sleep(0.5)
        for daemon in reversed(daemons):
            _stop(daemon)
        if not folder.is_relative_to(tmp_path_factory.getbasetemp()):
            shutil.rmtree(folder, ignore_errors=True)       # pytest does not clean this one
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


@pytest.mark.slow
def test_slurm_jobs_run_as_one_array_side_by_side(slurm_cluster, tmp_path):
    pieces = [executor.Piece(f"nap {i}", _nap, (3.0, tmp_path / "out" / f"{i}.txt"), 2)
              for i in range(2)]
    results = executor.run_pieces(pieces, executor.parse("slurm jobs=2 cpus=1 mem=1 time=10"),
                                  tmp_path / "jobs", _bar())
    assert results == [{"slept": 3.0}] * 2
    record = json.loads((tmp_path / "jobs" / "jobs.json").read_text())
    ids = [r["job"] for r in record]
    assert ids[0].split("_")[0] == ids[1].split("_")[0] and ids[0] != ids[1]   # one array
    (a0, a1), (b0, b1) = sorted((r["started"], r["ended"]) for r in record)
    assert b0 < a1                                                   # overlapping in time


@pytest.mark.slow
def test_a_slurm_job_that_is_killed_is_failed_not_waited_for(slurm_cluster, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv(executor.KILL_ENV, "dies")
    monkeypatch.setattr(executor, "VANISHED_GRACE_S", 2.0)
    out = tmp_path / "out"
    pieces = [executor.Piece("dies", _dies_mid_write, (out / "x.txt",), 1),
              executor.Piece("row 3", _refuses, (3,), 1)]
    started = time.monotonic()
    with pytest.raises(StageFailedError) as err:
        executor.run_pieces(pieces, executor.parse("slurm jobs=2 cpus=1 mem=1 time=10"),
                            tmp_path / "jobs", _bar(), scratch=[out])
    assert time.monotonic() - started < 120
    assert "dies: left the queue without a result" in str(err.value)
    assert "row 3: ParameterError: row 3 has no answer" in str(err.value)
    assert list(out.iterdir()) == []                         # the half-written file is gone


# -------------------------------------------------------- the smoke profile through jobs
STAGES = ["facts", "slick", "finetune"]
TABLES = ["slick", "sets", "results", "metrics", "checkpoints"]
FP32 = {"precision": "fp32"}
ONE_SEED = FP32 | {"seeds": [0]}     # fewer jobs where the two-seed run is already compared


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table the stages wrote, timings aside (seconds differ from run to run)."""
    run = RunFolder(run_dir)
    tables = {name: run.read(name) for name in TABLES}
    return {name: t.drop(columns=[c for c in t.columns if c.endswith("_seconds")])
            for name, t in tables.items()}


def _assert_same_tables(run_dir: Path, reference: dict[str, pd.DataFrame]) -> None:
    """The run's tables are the reference's, row for row; a run of fewer seeds is compared
    with the reference's rows of those seeds (each seed's sets and runs are its own)."""
    for name, table in _tables(run_dir).items():
        expected = reference[name]
        if "seed" in table:
            expected = expected[expected["seed"].isin(table["seed"].unique())]
        pd.testing.assert_frame_equal(table, expected.reset_index(drop=True),
                                      check_exact=True, obj=name)


def _strays(run_dir: Path) -> list[str]:
    """Temporary files an interrupted write or notebook left anywhere in the run folder."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                  if p.name.startswith(".") and ".tmp" in p.name)


def _jobs(run_dir: Path, stage: str) -> list[dict]:
    return json.loads((RunFolder(run_dir).jobs(stage) / "jobs.json").read_text())


@pytest.fixture(scope="module")
def one_process(smoke_fp32_run):
    """The smoke profile's stages 1-3 in fp32, in the stage's own process (the default): the
    tables of the session's fp32 smoke run."""
    return _tables(smoke_fp32_run[0])


@pytest.mark.slow
def test_the_smoke_profile_on_two_workers_resubmits_a_killed_run_alone_to_the_same_tables(
        one_process, tmp_path, monkeypatch):
    """Stages 1-3 on two workers, one fine-tuning run killed after its first epoch: the stage
    fails naming it, with every other run done side by side (one process each) and nothing
    half-written; run again, only the killed run is resubmitted, and the tables are the ones
    of one process."""
    victim = "seed0-mix_50%"
    monkeypatch.setenv(executor.KILL_ENV, victim)
    log = []
    with pytest.raises(StageFailedError) as err:
        pipeline.run("smoke", tmp_path, STAGES, FP32, book=False, log=log.append,
                     executor_spec="workers jobs=2")
    assert any("run on workers, 2 jobs at once" in line for line in log)
    assert f"{victim}: died before writing its result" in str(err.value)
    assert "1 of " in str(err.value)
    assert _strays(tmp_path) == []
    assert not RunFolder(tmp_path).path("results").exists()
    runs = _jobs(tmp_path, "finetune")
    assert len(runs) == RunFolder(tmp_path).read("sets").groupby(["seed", "variant"]).ngroups
    assert {r["piece"]: r["state"].split(" ")[0] for r in runs if r["piece"] != victim} == {
        r["piece"]: "done" for r in runs if r["piece"] != victim}
    assert [r["state"] for r in runs if r["piece"] == victim][0].startswith("died")
    done = [r for r in runs if r["piece"] != victim]
    spans = sorted((r["started"], r["ended"]) for r in done)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))  # overlap
    assert len({r["pid"] for r in done}) == len(done)           # one process per run
    greedy = json.loads((RunFolder(tmp_path).jobs("slick") / "greedy" / "jobs.json")
                        .read_text())
    assert len(greedy) == 2 and {r["state"] for r in greedy} == {"done"}
    monkeypatch.delenv(executor.KILL_ENV)
    pipeline.run("smoke", tmp_path, STAGES, FP32, book=False, log=lambda m: 0,
                 executor_spec="workers jobs=2")
    assert [r["piece"] for r in _jobs(tmp_path, "finetune")] == [victim]
    _assert_same_tables(tmp_path, one_process)
    assert _strays(tmp_path) == []


@pytest.mark.slow
def test_the_smoke_profile_as_slurm_jobs_gives_the_tables_of_one_process(
        slurm_cluster, one_process, tmp_path):
    pipeline.run("smoke", tmp_path, STAGES, ONE_SEED, book=False, log=lambda m: 0,
                 executor_spec="slurm jobs=2 cpus=1 mem=4 time=30")
    _assert_same_tables(tmp_path, one_process)
    runs = _jobs(tmp_path, "finetune")
    assert len({r["job"].split("_")[0] for r in runs}) == 1         # one job array
    spans = sorted((r["started"], r["ended"]) for r in runs)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))

"""The stage notebooks, executed by papermill on the smoke profile, and the CLI around them."""

import json

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from knowshift import cli, pipeline
from knowshift.errors import (DeviceUnavailableError, FactFileError, MissingStageOutputError,
                              ModelNotFoundError, ParameterError)
from knowshift.layout import STAGES, RunFolder
from knowshift.slick import run_stage as slick_stage
from knowshift.params import resolve


def test_notebooks_run_and_write_their_outputs(smoke_run):
    run_dir, log = smoke_run
    run = RunFolder(run_dir)
    for stage in STAGES:
        assert all(p.is_file() for p in run.required(stage.name)), stage.name
        nb = json.loads(run.notebook(stage.name).read_text())
        assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    slick_nb = run.notebook("slick").read_text()
    assert "image/png" in slick_nb and "HighlyKnown" in slick_nb
    assert run.figure("category_mix").with_suffix(".svg").is_file()
    stamp = json.loads(run.stamp("finetune").read_text())
    assert stamp["params"]["d_size"] == 4 and "n_train" not in stamp["params"]
    assert log == [f"[knowshift] {s.name}: done -> {run.notebook(s.name)}" for s in STAGES] + [
        f"[knowshift] book: done -> {run.book_index()}"]


def test_the_terminal_shows_progress_inside_slick_and_fine_tuning(smoke_run):
    """The stages run in notebook kernels; their progress reaches the terminal through the
    progress files, as bars with counts and rates, ending complete."""
    run_dir, _ = smoke_run
    shown = (run_dir / "terminal.log").read_text()
    lines = [line for part in shown.split("\r") for line in part.splitlines()]
    greedy = [line for line in lines if "slick: SliCK greedy" in line]
    tuning = [line for line in lines if "finetune: fine-tuning" in line]
    assert greedy and tuning
    runs = 12 * 2                                    # 6 variants x 2 seeds x 2 epochs
    assert any(f"{runs}/{runs}" in line for line in tuning)
    assert any("run 12/12: seed 1" in line for line in tuning)
    assert any("answers/s" in line or "s/answers" in line for line in greedy)
    assert (run_dir / ".progress" / "finetune.json").is_file()


def test_a_failing_cell_shows_its_traceback_in_the_terminal(tmp_path, capsys):
    """A stage whose cell raises stops the run with the error and the end of its traceback."""
    pipeline.run("smoke", tmp_path, stages=["facts"], book=False, log=lambda _: None)
    assert cli.main(["run", "slick", "--profile", "smoke", "--run-dir", str(tmp_path),
                     "--no-book", "-p", "k_shot=500"]) == 2
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if line.startswith("knowshift: error:"))
    assert "02_slick.ipynb failed: ParameterError" in first and "500-shot" in first
    assert "draw_exemplar_sets" in err                    # the traceback's last frames
    assert "\x1b[" not in err                             # without terminal colour codes


def test_current_stages_are_skipped_and_force_reruns(smoke_run):
    run_dir, _ = smoke_run
    run = RunFolder(run_dir)
    table = run.path("slick")
    before = table.stat().st_mtime_ns
    log = []
    pipeline.run("smoke", run_dir, log=log.append)
    assert log == [f"[knowshift] {s.name}: current, skipped" for s in STAGES] + [
        f"[knowshift] book: current, skipped -> {run.book_index()}"]
    assert table.stat().st_mtime_ns == before
    log = []
    pipeline.run("smoke", run_dir, stages=["facts"], force=True, log=log.append)
    assert log == [f"[knowshift] facts: done -> {run.notebook('facts')}"]


def test_a_stamp_file_counts_only_by_its_recorded_stamp(smoke_run):
    run_dir, _ = smoke_run
    stamp_file = RunFolder(run_dir).stamp("facts")
    record = json.loads(stamp_file.read_text())
    # a file that merely mentions the stamp somewhere else is not current
    stamp_file.write_text(json.dumps({"stage": "facts", "stamp": "0" * 16,
                                      "note": record["stamp"]}))
    log = []
    pipeline.run("smoke", run_dir, stages=["facts"], log=log.append)
    assert log == [f"[knowshift] facts: done -> {RunFolder(run_dir).notebook('facts')}"]
    assert json.loads(stamp_file.read_text())["stamp"] == record["stamp"]


def test_a_product_rewritten_since_its_stamp_makes_the_stage_stale(smoke_run):
    """E.g. a notebook run by hand with other parameters into the same folder."""
    run_dir, _ = smoke_run
    points = RunFolder(run_dir).path("points")
    points.write_bytes(points.read_bytes())
    log = []
    pipeline.run("smoke", run_dir, stages=["regression"], log=log.append)
    assert log[-1] == f"[knowshift] regression: done -> {RunFolder(run_dir).notebook('regression')}"
    assert all(line.endswith("current, skipped") for line in log[:-1])


def test_stage_kernels_run_without_transport_noise(smoke_run, capfd):
    """Stage kernels use local IPC sockets: no warning about unencrypted TCP in the terminal."""
    run_dir, _ = smoke_run
    capfd.readouterr()
    pipeline.run("smoke", run_dir, stages=["regression"], force=True, log=lambda _: None)
    err = capfd.readouterr().err
    assert "without encryption" not in err and "TCP" not in err


def test_bad_parameters_fail_before_anything_is_touched(smoke_run, capsys):
    run_dir, _ = smoke_run
    stamps = {p: p.read_text() for p in (run_dir / ".stamps").iterdir()}
    with pytest.raises(ParameterError, match="'n_train'.*must be int, got str 'many'"):
        pipeline.run("smoke", run_dir, overrides={"n_train": "many"})
    with pytest.raises(ParameterError, match=r"unknown stage\(s\) \['plots'\]"):
        pipeline.run("smoke", run_dir, stages=["plots"])
    assert cli.main(["run", "--profile", "smoke", "--run-dir", str(run_dir),
                     "-p", "n_samples=two"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("knowshift: error: parameter 'n_samples'") and "\n" not in err
    assert {p: p.read_text() for p in (run_dir / ".stamps").iterdir()} == stamps


def test_missing_sources_fail_before_the_first_stage(tmp_path):
    """A model path or fact folder that is not there stops the run before stage 1 writes."""
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        pipeline.run("smoke", tmp_path, overrides={"model": str(tmp_path / "no-model")})
    with pytest.raises(FactFileError, match="EntityQuestions folder .* does not exist"):
        pipeline.run("smoke", tmp_path, overrides={"facts": str(tmp_path / "no-eq")})
    with pytest.raises(ParameterError, match="profile file .* does not exist"):
        pipeline.run(str(tmp_path / "mine.yaml"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_stage_without_its_upstream_names_the_stage_to_run(tmp_path):
    with pytest.raises(MissingStageOutputError, match=r"run stage 1 \(facts\) first"):
        slick_stage(tmp_path, resolve("smoke"))


def test_notebook_rejects_a_bad_parameter_itself(tmp_path):
    with pytest.raises(PapermillExecutionError, match="ParameterError"):
        papermill.execute_notebook(str(pipeline.notebooks_dir() / "01_facts.ipynb"),
                                   str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"run_dir": str(tmp_path),
                                               "overrides": {"n_train": "x"}},
                                   progress_bar=False)
    assert not (tmp_path / "facts").exists()


def test_the_other_precision_runs_end_to_end_on_the_smoke_profile(tmp_path):
    """The smoke run uses precision 'auto' (bf16 where the CPU computes it natively, else
    fp32); here the precision it did not pick runs every stage, or, for bf16 on a CPU without
    native bf16, is refused before the first stage with the parameter to change."""
    from knowshift.models import cpu_computes_bf16, resolve_precision
    other = "fp32" if resolve_precision("cpu", "auto") == "bf16" else "bf16"
    if other == "bf16" and not cpu_computes_bf16():
        with pytest.raises(DeviceUnavailableError, match="set the parameter precision"):
            pipeline.run("smoke", tmp_path, overrides={"precision": "bf16"}, book=False)
        return
    log = []
    pipeline.run("smoke", tmp_path, overrides={"precision": other}, book=False,
                 log=log.append)
    run = RunFolder(tmp_path)
    assert log == [f"[knowshift] {s.name}: done -> {run.notebook(s.name)}" for s in STAGES]
    assert json.loads(run.stamp("finetune").read_text())["params"]["precision"] == other
    assert set(run.read("slick")["category"].dropna().astype(str)) <= {
        "HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"}
    assert run.read("checkpoints")["test_accuracy"].between(0, 1).all()

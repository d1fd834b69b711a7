"""The stage notebooks, executed by papermill on the smoke profile, and the CLI around them."""

import json
import shutil

import pandas as pd
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from knowshift import cli, pipeline
from knowshift.core.errors import (DeviceUnavailableError, FactFileError, MissingStageOutputError,
                                   ModelNotFoundError, ParameterError)
from knowshift.core.layout import STAGE_NAMES, STAGES, RunFolder
from knowshift.core.params import resolve
from knowshift.study.slick import run_stage as slick_stage


def ran(run: RunFolder, stage: str, why: str = "not run yet") -> list[str]:
    """What the log says of a stage that ran, and why it ran."""
    return [f"[knowshift] {stage}: {why}", f"[knowshift] {stage}: done -> {run.notebook(stage)}"]


@pytest.mark.slow
def test_notebooks_run_and_write_their_outputs(smoke_run):
    run_dir, log = smoke_run
    run = RunFolder(run_dir)
    for stage in STAGES:
        assert all(p.is_file() for p in run.outputs(stage.name)), stage.name
        nb = json.loads(run.notebook(stage.name).read_text())
        assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    slick_nb = run.notebook("slick").read_text()
    assert "image/svg+xml" in slick_nb and "HighlyKnown" in slick_nb
    assert run.figure("category_mix").with_suffix(".svg").is_file()
    stamp = json.loads(run.stamp("finetune").read_text())
    assert stamp["params"]["d_size"] == 4 and "n_train" not in stamp["params"]
    assert log == [line for s in STAGES for line in ran(run, s.name)] + [
        f"[knowshift] book: done -> {run.book_index()}"]


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert log == ran(run, "facts", "forced")


@pytest.mark.slow
def test_a_stamp_file_counts_only_by_its_recorded_stamp(smoke_run):
    run_dir, _ = smoke_run
    stamp_file = RunFolder(run_dir).stamp("facts")
    record = json.loads(stamp_file.read_text())
    # a file that merely mentions the stamp somewhere else is not current
    stamp_file.write_text(json.dumps({"stage": "facts", "stamp": "0" * 16,
                                      "note": record["stamp"]}))
    log = []
    pipeline.run("smoke", run_dir, stages=["facts"], log=log.append)
    assert log == ran(RunFolder(run_dir), "facts", "stale (its stamp records no key to compare)")
    assert json.loads(stamp_file.read_text())["stamp"] == record["stamp"]


@pytest.mark.slow
def test_a_product_rewritten_since_its_stamp_makes_the_stage_stale(smoke_run):
    """E.g. a notebook run by hand with other parameters into the same folder."""
    run_dir, _ = smoke_run
    points = RunFolder(run_dir).path("points")
    points.write_bytes(points.read_bytes())
    log = []
    pipeline.run("smoke", run_dir, stages=["regression"], log=log.append)
    assert log[-2:] == ran(RunFolder(run_dir), "regression",
                           "stale (its products were rewritten or removed)")
    assert all(line.endswith("current, skipped") for line in log[:-2])


@pytest.mark.slow
def test_a_code_edit_makes_stale_only_the_stages_built_with_it(smoke_run, tmp_path):
    """The pipeline's status of the smoke run, with the package (copied) edited: the audit
    report's script makes only the audit stale; evaluation code makes fine-tuning stale, and
    the stages that read its tables, directly or not."""
    run_dir, _ = smoke_run
    folder, params = RunFolder(run_dir), resolve("smoke")
    root = tmp_path / "knowshift"
    shutil.copytree(pipeline.PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))

    def stale(name, old, new):
        path = root / name
        path.write_text(path.read_text().replace(old, new, 1))
        steps = pipeline.stage_status(params, folder, STAGE_NAMES, root=root)
        path.write_text(path.read_text().replace(new, old, 1))
        return {s.stage.name: s.reason for s in steps if not s.current}

    assert stale("engine/evaluation.py", '"""Closed-book', '"""Reworded: closed-book') == {}
    assert stale("audit/templates/audit_table.js", "String(n)", "String(n + 0)") == {
        "audit": "stale (data audit/templates/audit_table.js changed)"}
    assert stale("engine/evaluation.py", "from __future__ import annotations",
                 "from __future__ import annotations\nX = 1") == {
        "finetune": "stale (modules engine.evaluation changed)",
        **{name: "stale (finetune, which it reads, changed)"
           for name in ["dynamics", "regression", "categories", "mitigations"]},
        "audit": "stale (regression, which it reads, changed)"}


@pytest.mark.slow
def test_force_recomputes_a_cached_fine_tuning_run(smoke_run):
    """``--force`` empties the stage's cache: every run is trained again, to the same rows."""
    run_dir, _ = smoke_run
    run = RunFolder(run_dir)
    cached = {p: p.stat().st_mtime_ns for p in run.cache("finetune").rglob("*.parquet")}
    results = run.read("results")
    log = []
    pipeline.run("smoke", run_dir, stages=["finetune"], force=True, log=log.append)
    assert log == ["[knowshift] facts: current, skipped", "[knowshift] slick: current, skipped",
                   *ran(run, "finetune", "forced, caches emptied")]
    again = {p: p.stat().st_mtime_ns for p in run.cache("finetune").rglob("*.parquet")}
    assert cached and again.keys() == cached.keys()
    assert all(again[p] > cached[p] for p in cached)
    timings = ["train_seconds", "eval_seconds"]
    pd.testing.assert_frame_equal(run.read("results").drop(columns=timings),
                                  results.drop(columns=timings))


@pytest.mark.slow
def test_stage_kernels_run_without_transport_noise(smoke_run, capfd):
    """Stage kernels use local IPC sockets: no warning about unencrypted TCP in the terminal."""
    run_dir, _ = smoke_run
    capfd.readouterr()
    pipeline.run("smoke", run_dir, stages=["regression"], force=True, log=lambda _: None)
    err = capfd.readouterr().err
    assert "without encryption" not in err and "TCP" not in err


@pytest.mark.slow
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


def test_missing_sources_fail_before_the_first_stage(tmp_path, monkeypatch):
    """A model path or fact folder that is not there stops the run before stage 1 writes (the
    hub is not asked: offline, a hub id must be in the local hub cache)."""
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        pipeline.run("smoke", tmp_path, overrides={"model": str(tmp_path / "no-model")})
    with pytest.raises(FactFileError, match="EntityQuestions folder .* does not exist"):
        pipeline.run("smoke", tmp_path, overrides={"facts": str(tmp_path / "no-eq")})
    with pytest.raises(ParameterError, match="profile file .* does not exist"):
        pipeline.run(str(tmp_path / "mine.yaml"), tmp_path)
    with pytest.raises(ModelNotFoundError, match="'knowshift-tests/no-such-model' is not"):
        pipeline.run("smoke", tmp_path, overrides={"model": "knowshift-tests/no-such-model"})
    with pytest.raises(ParameterError, match="pure_size 17 is more than the study's n_train 16"):
        pipeline.run("smoke", tmp_path, overrides={"pure_size": 17})
    assert list(tmp_path.iterdir()) == []


def test_relative_paths_are_read_from_the_callers_directory(tmp_path, monkeypatch):
    """Before any stage runs (its kernel in notebooks/), a relative fact folder is resolved
    where the user typed it; a missing one is named as resolved."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FactFileError, match="EntityQuestions folder .*/no-eq' does not exist"):
        pipeline.run("smoke", tmp_path / "run", overrides={"facts": "no-eq"})
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_pure_set_larger_than_its_slick_category_stops_before_any_stage(smoke_run):
    """With SliCK's labels in the run folder and SliCK current, a pure_size larger than a
    category's train questions is refused before the first stage, with SliCK's counts."""
    run_dir, _ = smoke_run
    stamps = {p: p.read_text() for p in (run_dir / ".stamps").iterdir()}
    table = RunFolder(run_dir).read("slick")
    train = table[(table["split"] == "train") & ~table["ood"]]
    unknown = int((train["category"] == "Unknown").sum())
    if unknown >= len(train):
        pytest.skip("every smoke train question is Unknown: no pure_size between the counts")
    with pytest.raises(ParameterError, match=rf"pure_size {unknown + 1} is more than SliCK put "
                                             rf"in D_Unknown, but the {len(train)} train "
                                             rf"questions SliCK labelled hold .*Unknown {unknown}"):
        pipeline.run("smoke", run_dir, overrides={"pure_size": unknown + 1})
    assert {p: p.read_text() for p in (run_dir / ".stamps").iterdir()} == stamps


@pytest.mark.slow
def test_a_relative_fact_folder_reaches_stage_one_resolved(tmp_path, monkeypatch):
    """`knowshift run facts -p facts=tests/data/entityquestions` from the repository root: the
    stage's kernel runs in notebooks/, and finds the folder the user meant."""
    monkeypatch.chdir(pipeline.notebooks_dir().parent)
    assert cli.main(["run", "facts", "--profile", "smoke", "--run-dir", str(tmp_path),
                     "-p", "facts=tests/data/entityquestions", "-p", "relations=null"]) == 0
    facts = RunFolder(tmp_path).read("facts")
    assert set(facts["relation"]) == {"P17", "P20", "P36"}
    recorded = json.loads(RunFolder(tmp_path).stamp("facts").read_text())["params"]["facts"]
    assert recorded == str(pipeline.notebooks_dir().parent / "tests" / "data" / "entityquestions")


def test_a_current_stage_takes_its_notebooks_prose_and_the_book_follows(tmp_path, monkeypatch):
    """A prose edit reruns no stage (its key covers code cells only), so the run's executed
    notebook takes the new markdown and display tags, keeping its outputs and papermill's
    injected parameters, and the book is rebuilt from it; an executed notebook that ran other
    code is left alone."""
    from knowshift.pipeline import notebook_code_key
    source = tmp_path / "02_slick.ipynb"
    shutil.copy(pipeline.REPOSITORY / "notebooks" / source.name, source)
    folder = RunFolder(tmp_path / "run")
    executed = folder.notebook("slick")
    executed.parent.mkdir(parents=True)
    papermill.execute_notebook(str(source), str(executed), parameters={"run_dir": "/run"},
                               kernel_name="python3", progress_bar=False, prepare_only=True)
    nb = json.loads(executed.read_text())
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"out {i}\n"]}]
        cell["execution_count"] = i + 1
    executed.write_text(json.dumps(nb, indent=1))
    built = []

    def build_html(run_dir):
        built.append(run_dir)
        folder.book_index().parent.mkdir(parents=True, exist_ok=True)
        folder.book_index().write_text("<html></html>")
        return folder.book_index()
    monkeypatch.setattr(pipeline, "build_html", build_html)
    pipeline.build_book(folder, "upstream", log=lambda _: None)
    assert not pipeline.refresh_prose(source, executed)            # as papermill wrote it

    def edit(change):
        nb = json.loads(source.read_text())
        change(nb["cells"])
        source.write_text(json.dumps(nb, indent=1))
    key = notebook_code_key(source)
    edit(lambda cells: (cells[0].update(source=["# Reworded\n"]),
                        cells[5]["metadata"].setdefault("tags", []).append("hide-input")))
    assert notebook_code_key(source) == key and cells_of(source)[5]["cell_type"] == "code"
    outputs = [c["outputs"] for c in cells_of(executed) if c["cell_type"] == "code"]
    assert pipeline.refresh_prose(source, executed)
    assert not pipeline.refresh_prose(source, executed)
    after = cells_of(executed)
    assert after[0]["source"] == ["# Reworded\n"]
    assert [c["outputs"] for c in after if c["cell_type"] == "code"] == outputs
    assert "parameters" in after[1]["metadata"]["tags"]           # papermill's cell after it
    assert after[2]["metadata"]["tags"] == ["injected-parameters"]
    assert "hide-input" in after[6]["metadata"]["tags"] and len(after) == len(cells_of(source)) + 1
    log = []
    pipeline.build_book(folder, "upstream", log=log.append)
    assert len(built) == 2 and log == [f"[knowshift] book: done -> {folder.book_index()}"]
    pipeline.build_book(folder, "upstream", log=log.append)
    assert len(built) == 2
    # other code in the notebook than the executed one ran: not the same stage's prose
    edit(lambda cells: cells[5].update(source="".join(cells[5]["source"]) + "\nNone"))
    before = executed.read_text()
    edit(lambda cells: cells[0].update(source=["# Reworded again\n"]))
    assert not pipeline.refresh_prose(source, executed) and executed.read_text() == before


def cells_of(notebook):
    return json.loads(notebook.read_text())["cells"]


def test_a_stage_without_its_upstream_names_the_stage_to_run(tmp_path):
    with pytest.raises(MissingStageOutputError, match=r"run stage 1 \(facts\) first"):
        slick_stage(tmp_path, resolve("smoke"))


@pytest.mark.slow
def test_notebook_rejects_a_bad_parameter_itself(tmp_path):
    with pytest.raises(PapermillExecutionError, match="ParameterError"):
        papermill.execute_notebook(str(pipeline.notebooks_dir() / "01_facts.ipynb"),
                                   str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"run_dir": str(tmp_path),
                                               "overrides": {"n_train": "x"}},
                                   progress_bar=False)
    assert not (tmp_path / "facts").exists()


@pytest.mark.slow
def test_the_other_precision_runs_end_to_end_on_the_smoke_profile(request, tmp_path):
    """The smoke run uses precision 'auto' (bf16 where the CPU computes it natively, else
    fp32); here the precision it did not pick runs every stage (fp32: the session's fp32 run,
    which the executor's tests compare with), or, for bf16 on a CPU without native bf16, is
    refused before the first stage with the parameter to change."""
    from knowshift.engine.models import cpu_computes_bf16, resolve_precision
    other = "fp32" if resolve_precision("cpu", "auto") == "bf16" else "bf16"
    if other == "bf16" and not cpu_computes_bf16():
        with pytest.raises(DeviceUnavailableError, match="set the parameter precision"):
            pipeline.run("smoke", tmp_path, overrides={"precision": "bf16"}, book=False)
        return
    if other == "fp32":
        run_dir, log = request.getfixturevalue("smoke_fp32_run")
    else:
        run_dir, log = tmp_path, []
        pipeline.run("smoke", run_dir, overrides={"precision": other}, book=False,
                     log=log.append)
    run = RunFolder(run_dir)
    assert log == [line for s in STAGES for line in ran(run, s.name)]
    assert json.loads(run.stamp("finetune").read_text())["params"]["precision"] == other
    assert set(run.read("slick")["category"].dropna().astype(str)) <= {
        "HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"}
    assert run.read("checkpoints")["test_accuracy"].between(0, 1).all()


@pytest.mark.slow
def test_a_profile_without_pure_or_mitigation_sets_runs_every_stage_and_its_book(smoke_run,
                                                                                  tmp_path):
    """A valid profile that runs no category-pure and no mitigation set: every analysis stage
    and the book run, and the findings that need those sets say they were not run. (The smoke
    run's folder is copied first: its facts and SliCK are current for this profile too.)"""
    from knowshift.study import findings
    run_dir = tmp_path / "run"
    shutil.copytree(smoke_run[0], run_dir, ignore=shutil.ignore_patterns("book"))
    log = []
    pipeline.run("smoke", run_dir, overrides={"pure_categories": [], "mitigation_shares": []},
                 log=log.append)
    assert log[:2] == ["[knowshift] facts: current, skipped", "[knowshift] slick: current, skipped"]
    run = RunFolder(run_dir)
    assert run.book_index().is_file()
    assert run.read("accuracy_by_category").empty and run.read("mitigations").empty
    table = findings.compare(run_dir).set_index("finding")
    skipped = table[table["ours"] == findings.NOT_RUN[0]]
    assert {"D_MaybeKnown gives the best overall accuracy",
            "D_Unknown overfits most and is worst at CONVERGENCE"} <= set(skipped.index)
    assert (skipped["verdict"] == "-").all() and (skipped["size_verdict"] == "-").all()

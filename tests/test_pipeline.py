"""The stage notebooks, executed by papermill on the smoke profile, and the CLI around them."""

import json

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from knowshift import cli, pipeline
from knowshift.config import load_profile, parse_override
from knowshift.errors import ParameterError


def test_notebooks_run_and_write_their_outputs(smoke_run):
    run_dir, log = smoke_run
    for stage in pipeline.STAGES:
        assert all((run_dir / o).is_file() for o in stage.outputs)
        nb = json.loads((run_dir / "notebooks" / stage.notebook).read_text())
        assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    slick_nb = (run_dir / "notebooks" / "02_slick.ipynb").read_text()
    assert "image/png" in slick_nb and "HighlyKnown" in slick_nb
    assert (run_dir / "slick" / "figures" / "category_mix.svg").is_file()
    index = run_dir / "book" / "html" / "index.html"
    assert log == [f"[knowshift] {s.name}: done -> {run_dir / 'notebooks' / s.notebook}"
                   for s in pipeline.STAGES] + [f"[knowshift] book: done -> {index}"]


def test_current_stages_are_skipped_and_force_reruns(smoke_run):
    run_dir, _ = smoke_run
    table = run_dir / "slick" / "slick.parquet"
    before = table.stat().st_mtime_ns
    log = []
    pipeline.run("smoke", run_dir, log=log.append)
    index = run_dir / "book" / "html" / "index.html"
    assert log == [f"[knowshift] {s.name}: current, skipped" for s in pipeline.STAGES] + [
        f"[knowshift] book: current, skipped -> {index}"]
    assert table.stat().st_mtime_ns == before
    log = []
    pipeline.run("smoke", run_dir, stages=["facts"], force=True, log=log.append)
    assert log == [f"[knowshift] facts: done -> {run_dir / 'notebooks' / '01_facts.ipynb'}"]


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


def test_notebook_rejects_a_bad_parameter_itself(tmp_path):
    with pytest.raises(PapermillExecutionError, match="ParameterError"):
        papermill.execute_notebook(str(pipeline.notebooks_dir() / "01_facts.ipynb"),
                                   str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"run_dir": str(tmp_path), "n_train": "x"},
                                   progress_bar=False)
    assert not (tmp_path / "facts").exists()


def test_profiles_and_overrides():
    smoke = load_profile("smoke")
    assert smoke["model"] == "default" and smoke["n_exemplar_sets"] == 2
    assert load_profile("paper")["n_exemplar_sets"] == 10
    assert parse_override("relations=[P17, P36]") == ("relations", ["P17", "P36"])
    assert parse_override("model=./my-model") == ("model", "./my-model")
    with pytest.raises(ParameterError, match="name=value"):
        parse_override("n_train")
    with pytest.raises(ParameterError, match="unknown parameter 'lr'"):
        parse_override("lr=3")

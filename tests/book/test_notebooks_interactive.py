"""The interactive path: the stage notebooks opened in Jupyter and run top to bottom, in order,
with their own parameters cell (here edited to the smoke profile and a fresh run folder, as a
participant would edit it), executed by nbclient with no papermill injection."""

import json
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from knowshift.core.layout import STAGES, RunFolder
from knowshift.pipeline import notebooks_dir

pytestmark = pytest.mark.slow     # every test here loads the model, runs a profile or drives Chromium


def test_notebooks_run_top_to_bottom_in_jupyter_into_one_run_folder(tmp_path):
    copies, run_dir = tmp_path / "notebooks", tmp_path / "runs" / "mine"
    shutil.copytree(notebooks_dir(), copies)
    run = RunFolder(run_dir)
    for stage in STAGES:
        path = copies / stage.notebook
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert 'run_dir = "../runs/workshop"' in cell.source, stage.notebook
        cell.source = cell.source.replace('"../runs/workshop"', '"../runs/mine"').replace(
            'profile = "workshop"', 'profile = "smoke"')
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(copies)}}).execute()
        errors = [o for c in nb.cells for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, (stage.notebook, errors)
        assert all(p.is_file() for p in run.outputs(stage.name)), stage.notebook
    sets = json.loads(json.dumps(run.read("sets")["seed"].unique().tolist()))
    assert sets == [0, 1]                            # the smoke profile's seeds

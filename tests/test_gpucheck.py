"""``make gpu-check`` on a CPU: the same target and script, on a tiny random config, with the
paper profile's batch sizes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from knowshift.core.params import resolve

pytestmark = pytest.mark.slow     # builds and runs a model


def test_gpu_check_runs_on_a_cpu_with_a_small_random_config(tmp_path):
    out = tmp_path / "gpu-check.json"
    done = subprocess.run(["make", "-s", "gpu-check", f"GPU_PYTHON={sys.executable}",
                           f"GPU_CHECK_ARGS=--small --device cpu --lora-steps 2 --out {out}"],
                          cwd=Path(__file__).parents[1], capture_output=True, text=True,
                          timeout=600)
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

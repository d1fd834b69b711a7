"""How close ``knowshift plan`` comes to a real run on this machine: the plan of a profile with
costs measured here (``--measure``), then the run itself from an empty folder and cache, one
after the other; prints planned and measured seconds per model stage (papermill's own
duration of each stage's notebook) and for the whole run.

    python benchmarks/plan_accuracy.py [--profile live]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL_STAGES = ("slick", "finetune", "audit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="live")
    args = parser.parse_args()
    knowshift = [sys.executable, "-m", "knowshift.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "KNOWSHIFT_CACHE": os.environ.get("KNOWSHIFT_CACHE", "")
               or str(Path.home() / ".cache" / "knowshift")}
        run_dir, plan_file = Path(tmp) / "run", Path(tmp) / "plan.json"
        start = time.perf_counter()
        subprocess.run([*knowshift, "plan", "--profile", args.profile, "--measure",
                        "--run-dir", str(run_dir), "--json", str(plan_file)], check=True,
                       env=env)
        plan_s = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([*knowshift, "run", "--profile", args.profile, "--run-dir",
                        str(run_dir)], check=True, env=env, stdout=subprocess.DEVNULL)
        run_s = time.perf_counter() - start
        plan = json.loads(plan_file.read_text())
        planned = {}
        for phase in plan["phases"]:
            planned[phase["stage"]] = planned.get(phase["stage"], 0) + phase["seconds"]
        measured = {}
        for notebook in sorted((run_dir / "notebooks").glob("*.ipynb")):
            meta = json.loads(notebook.read_text())["metadata"].get("papermill", {})
            stage = notebook.stem.split("_", 1)[1]
            measured[stage] = meta.get("duration") or 0.0
    print(f"plan --measure took {plan_s:.0f} s; the run {run_s:.0f} s")
    for stage in MODEL_STAGES:
        p, m = planned.get(stage, 0.0), measured.get(stage, 0.0)
        print(f"{stage:10s} planned {p:7.1f} s  measured {m:7.1f} s  ratio {m / p:.2f}")
    model_p = sum(planned.values())
    model_m = sum(measured.get(s, 0.0) for s in MODEL_STAGES)
    print(f"model stages: planned {model_p:.0f} s, measured {model_m:.0f} s "
          f"(ratio {model_m / model_p:.2f}); whole run {run_s:.0f} s (ratio "
          f"{run_s / model_p:.2f}, notebooks, analyses and the book included)")


if __name__ == "__main__":
    main()

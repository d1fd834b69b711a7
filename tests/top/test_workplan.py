"""``knowshift plan`` counts the work a run does: checked against what the smoke run recorded
as it ran (``.work/<stage>.json``), and against the generation on its own."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from knowshift.core.layout import RunFolder
from knowshift.core.params import resolve
from knowshift.engine import work
from knowshift.workplan import BOUND_COUNTS, make_plan

pytestmark = pytest.mark.slow     # reads the smoke run

EXACT = [c for c in work.COUNTS if c not in BOUND_COUNTS]


def _phases(plan, stage):
    return {ph.phase: ph for ph in plan.phases if ph.stage == stage}


def test_the_plan_of_a_run_counts_what_the_run_recorded(smoke_run):
    run_dir, _ = smoke_run
    folder = RunFolder(run_dir)
    params = resolve("smoke", {}).with_paths_resolved(Path.cwd())
    plan = make_plan(params, run_dir, "cpu")
    for stage in ("slick", "finetune"):
        recorded = json.loads(folder.work(stage).read_text())
        planned = _phases(plan, stage)
        assert set(recorded) <= set(planned), stage
        for name, counts in recorded.items():
            phase = planned[name]
            if phase.exact:          # the run folder's SliCK table makes all but one exact
                assert {c: counts[c] for c in EXACT} == {
                    c: getattr(phase.counts, c) for c in EXACT}, (stage, name)
            else:
                assert name == "finetune early-stop evaluation"
                assert all(counts[c] <= getattr(phase.counts, c) for c in work.COUNTS)
            for c in BOUND_COUNTS:                  # answers end before their budgets
                assert counts[c] <= getattr(phase.counts, c), (stage, name, c)
    slick = _phases(plan, "slick")
    assert slick["slick sample"].exact and slick["slick greedy"].counts.prompts == (
        len(folder.read("study")) * params["n_exemplar_sets"])


def test_a_plan_before_any_stage_counts_the_greedy_pass_exactly(smoke_run, tmp_path):
    """Before stage 2 nothing depends on answers in the greedy pass; the sampled pass is
    bounded by every question, and the fine-tuning sizes are exact."""
    run_dir, _ = smoke_run
    params = resolve("smoke", {}).with_paths_resolved(Path.cwd())
    fresh = make_plan(params, tmp_path / "none", "cpu")
    done = make_plan(params, run_dir, "cpu")
    before, after = _phases(fresh, "slick"), _phases(done, "slick")
    assert before["slick greedy"].counts == after["slick greedy"].counts
    assert not before["slick sample"].exact
    assert before["slick sample"].counts.rows >= after["slick sample"].counts.rows
    fb, fa = _phases(fresh, "finetune"), _phases(done, "finetune")
    for c in ("trained_examples", "train_steps"):
        assert getattr(fb["finetune training"].counts, c) == getattr(
            fa["finetune training"].counts, c)
    assert fb["finetune evaluation"].counts.prompts == fa["finetune evaluation"].counts.prompts


def test_knowshift_plan_prints_work_memory_and_time_from_a_costs_file(tmp_path):
    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps({"costs": {
        "device": "a stated device", "model": "default", "precision": "fp32",
        "prompt_token_s": 1e-4, "step_s": 0.01, "row_step_s": 1e-3, "train_step_s": 0.05,
        "train_token_s": 1e-3, "load_s": 1.0}}))
    out = subprocess.run([sys.executable, "-m", "knowshift.cli", "plan", "--profile", "smoke",
                          "--run-dir", str(tmp_path / "run"), "--costs", str(costs),
                          "--gpu-memory", "0.1", "--json", str(tmp_path / "plan.json"),
                          "--workers", "4"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "slick" in out.stdout and "costs measured on a stated device" in out.stdout
    assert "over 0.1 GiB" in out.stdout                  # the model's weights alone are more
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["total_seconds"] > 0 and plan["shape"]["parameters"] > 100e6
    assert "wall time on 4 workers" in out.stdout
    assert plan["workers"] == 4 and 0 < plan["wall_seconds"] < plan["total_seconds"]
    (tmp_path / "junk.json").write_text('{"prompt_token_s": 1}')
    bad = subprocess.run([sys.executable, "-m", "knowshift.cli", "plan", "--costs",
                          str(tmp_path / "junk.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "costs file" in bad.stderr and bad.stderr.count("\n") == 1


def test_the_wall_time_on_n_workers_spreads_the_pieces_and_loads_once_per_job(tmp_path):
    """One worker is the one-process total; enough workers leave each farmed pass as long as
    its longest piece plus a model load; in between, never less than an even split."""
    from knowshift.workplan import Costs
    costs = Costs("a stated device", "default", "fp32", prompt_token_s=1e-4, step_s=0.01,
                  row_step_s=1e-3, train_step_s=0.05, train_token_s=1e-3, load_s=2.0)
    params = resolve("smoke", {}).with_paths_resolved(Path.cwd())
    plan = make_plan(params, tmp_path / "run", "cpu", costs)
    total = plan.total_seconds()
    assert plan.wall_seconds(1) == total
    groups = {}
    for ph in plan.phases:
        if ph.group:
            groups.setdefault(ph.group, []).append(ph)
    assert set(groups) == {"slick greedy", "slick sample", "finetune"}
    runs = len(groups["finetune"][0].pieces)
    assert runs == 12                               # 6 variants x 2 seeds, one piece each
    longest = {name: max(sum(ph.pieces[i].seconds(costs) for ph in phases)
                         for i in range(len(phases[0].pieces)))
               for name, phases in groups.items()}
    rest = sum(ph.seconds(costs) for ph in plan.phases if not ph.group
               and not (ph.phase == "model load" and ph.stage in ("slick", "finetune")))
    many = plan.wall_seconds(1000)
    assert many == pytest.approx(rest + sum(longest.values()) + 3 * costs.load_s)
    two = plan.wall_seconds(2)
    farmed = total - rest - costs.load_s * (1 + 12)     # one load in SliCK, one per full run
    assert rest + farmed / 2 <= two < total
    assert many < two

"""The ``knowshift`` command line: run study stages through papermill."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from . import pipeline
from .audit import judge, rows
from .audit.rows import Budget
from .book import build, check
from .core.errors import KnowshiftError, ParameterError
from .core.layout import STAGE_NAMES, RunFolder, run_dir_for
from .core.params import DEFAULT_PROFILE, SCHEMA, describe, parse_override, profile_names, resolve
from .study.slick import SlickConfig

# `knowshift audit` flags for SliCK parameters (flag -> parameter); each defaults to the
# profile's value.
AUDIT_FLAGS = {"exemplar-sets": "n_exemplar_sets", "samples": "n_samples", "k-shot": "k_shot",
               "temperature": "temperature", "max-new-tokens": "max_new_tokens",
               "batch-size": "batch_size", "device": "device", "precision": "precision",
               "seed": "seed"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="knowshift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run study stages (all by default), skipping current ones")
    run.add_argument("stages", nargs="*", metavar="STAGE",
                     help=f"stages to run: {STAGE_NAMES} (default: all), with the stages "
                          "they read from where those are not current")
    run.add_argument("--profile", default=DEFAULT_PROFILE,
                     help=f"a profile name {profile_names()} or a .yaml file "
                          f"(default: {DEFAULT_PROFILE})")
    run.add_argument("--run-dir", help="run folder (default: runs/<profile>)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a profile parameter, e.g. -p n_train=60")
    run.add_argument("--force", action="store_true", help="rerun the named stages even if current")
    run.add_argument("--no-book", action="store_true",
                     help="do not build the book after the stages (built when all stages run)")
    run.add_argument("--executor", metavar="SPEC",
                     help="where SliCK's blocks and the fine-tuning runs go: 'local' (in the "
                          "stage, the default), 'workers jobs=N [gpus=0,1,..]' (N processes "
                          "here, one per GPU given), or 'slurm jobs=N [partition=P gpus=G "
                          "cpus=C mem=GB time=MIN account=A qos=Q constraint=C]' (a job "
                          "array); default $KNOWSHIFT_EXECUTOR. Changes no result")
    book = sub.add_parser("book", help="build the book of a finished run (and check it)")
    book.add_argument("--profile", default=DEFAULT_PROFILE, help="profile whose run folder to use")
    book.add_argument("--run-dir", help="run folder (default: runs/<profile>)")
    book.add_argument("--check", action="store_true",
                      help="open the built book in headless Chromium: pages, figures, formulas, "
                           "links; save screenshots of the results and workshop chapters")
    book.add_argument("--publish", metavar="DIR",
                      help="copy the built (and, with --check, checked) book to DIR for static "
                           "hosting, e.g. a gh-pages checkout; DIR must be empty or a previous "
                           "publish")
    audit = sub.add_parser(
        "audit", help="audit a fine-tuning file before training (and gate on it)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run SliCK on the examples of DATA and write a report: the category mix, "
        "the evidence per example, the examples most likely Unknown, the expected accuracy "
        "effect and a recommendation, plus filtered and IDK-relabelled files in DATA's own "
        "format. DATA is a .jsonl, .json (array), .csv or .parquet file, or a Hugging Face "
        "dataset folder (save_to_disk); its rows are question/answer(s), chat 'messages', "
        "ShareGPT 'conversations' or Alpaca instruction/input/output, detected from the rows. "
        "Turns SliCK cannot judge (a prompt that asks for no short fact: chit-chat, advice, "
        "creative or text tasks, follow-ups; long answers, tool calls, no user->assistant "
        "pair) are skipped and counted; advice and --fail-above rest on the judged examples, "
        "and a file less than a quarter judged gets none. SliCK's settings, the model and "
        "the device come from --profile unless given here.",
        epilog="exit codes:\n"
        f"  {judge.EXIT_OK}  audited (and, with --fail-above, the Unknown share is within it)\n"
        f"  {judge.EXIT_ERROR}  nothing audited: a bad file, parameter, model or device "
        "(one line on stderr)\n"
        f"  {judge.EXIT_GATE}  audited, but the Unknown share (its lower 95 % bound under "
        "--sample) exceeds --fail-above,\n     or the audit cannot judge the file; the report "
        "and files are written")
    audit.add_argument("data", metavar="DATA", help="the fine-tuning file (or dataset folder)")
    audit.add_argument("--format", dest="shape", choices=rows.SHAPES,
                       help="the rows' shape, when detection from the first row is wrong")
    audit.add_argument("--sample", type=int, metavar="N",
                       help="label a seeded random sample of N examples (stratified by "
                            "--group-by) and report shares with 95 %% intervals")
    audit.add_argument("--fail-above", type=float, metavar="SHARE",
                       help="exit with code 3 if the Unknown share (lower 95 %% bound under "
                            "--sample) exceeds SHARE, e.g. 0.3")
    audit.add_argument("--max-answer-words", type=int, default=Budget.max_answer_words,
                       help="skip answers longer than this: exact match cannot judge them "
                            "(default: %(default)s)")
    audit.add_argument("--max-prompt-words", type=int, default=Budget.max_prompt_words,
                       help="skip prompts longer than this (default: %(default)s)")
    audit.add_argument("--judge-all", action="store_true",
                       help="judge every example within the length budget, not only questions "
                            "for a short fact (for a file you know is factual)")
    audit.add_argument("--profile", default=DEFAULT_PROFILE,
                       help="profile whose model, device and SliCK settings to use "
                            f"(default: {DEFAULT_PROFILE}; see `knowshift params`)")
    audit.add_argument("--model", help="'default' (embedded SmolLM2-135M), a local folder or "
                                       "a hub id (default: the profile's)")
    audit.add_argument("--out", help="output folder (default: runs/audit/<DATA name>)")
    audit.add_argument("--group-by", action="append", default=[], metavar="COLUMN",
                       help="also report the category mix by this column (repeatable)")
    audit.add_argument("--study", default=None, metavar="RUN_DIR",
                       help="knowshift run whose regression predicts the effect (default: "
                            "runs/workshop if finished, else the paper's Table 1; 'paper' "
                            "forces the paper's)")
    for flag, name in AUDIT_FLAGS.items():
        audit.add_argument(f"--{flag}", type=SCHEMA[name].types[0], dest=name,
                           help=f"{SCHEMA[name].help} (default: the profile's)")
    plan = sub.add_parser(
        "plan", help="a profile's work, peak memory and time per stage, before running it",
        description="Count what a run of the profile will do (prompts, prompt, generated and "
        "trained tokens, forward passes) per stage, estimate its peak device memory, and, "
        "from per-token costs measured on the device, its time. What depends on the model's "
        "answers is given as at most; a run folder's finished stages make it exact.")
    plan.add_argument("--profile", default=DEFAULT_PROFILE,
                      help=f"a profile name {profile_names()} or a .yaml file")
    plan.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                      help="override a profile parameter")
    plan.add_argument("--run-dir", help="run folder whose finished stages to read "
                                        "(default: runs/<profile>)")
    plan.add_argument("--device", choices=("cpu", "cuda"),
                      help="the device to plan for (default: the profile's)")
    plan.add_argument("--gpu-memory", type=float, metavar="GIB",
                      help="say which stages would not fit in this much device memory")
    plan.add_argument("--measure", action="store_true",
                      help="measure the per-token costs here (loads the model; a minute on a "
                           "CPU for the default model) and give times")
    plan.add_argument("--costs", metavar="FILE",
                      help="per-token costs measured on the device (a file written by "
                           "--measure --save-costs, or by `make gpu-check`)")
    plan.add_argument("--save-costs", metavar="FILE", help="with --measure: write the costs")
    plan.add_argument("--workers", type=int, default=1, metavar="N",
                      help="also give the wall time with N jobs at once (an executor's "
                           "workers or SLURM jobs, one device each; see run --executor)")
    plan.add_argument("--json", metavar="FILE", help="also write the plan as JSON")
    sub.add_parser("params", help="list the parameters a profile may set")
    args = parser.parse_args(argv)
    try:
        if args.command == "params":
            for name, types, value, what in describe():
                print(f"{name:18s} {types:10s} {value:22s} {what}")
            return 0
        if args.command == "book":
            return _book(args)
        if args.command == "audit":
            return _audit(args)
        if args.command == "plan":
            return _plan(args)
        overrides = dict(parse_override(p) for p in args.param)
        run_dir = pipeline.run(args.profile, args.run_dir, args.stages or None, overrides,
                               force=args.force, book=False if args.no_book else None,
                               executor_spec=args.executor)
        print(f"[knowshift] results in {run_dir}")
        return 0
    except KnowshiftError as err:
        print(f"knowshift: error: {err}", file=sys.stderr)
        return judge.EXIT_ERROR


def _audit(args) -> int:
    study = args.study
    if study is None:
        default = run_dir_for(DEFAULT_PROFILE)
        study = default if RunFolder(default).path("points").is_file() else "paper"
    given = {name: getattr(args, name) for name in ("model", *AUDIT_FLAGS.values())
             if getattr(args, name) is not None}
    params = resolve(args.profile, given)
    if args.fail_above is not None:          # a bad threshold fails before any model work
        judge.check_fail_above(args.fail_above)
    report = judge.run(args.data, params.model, params.device,
                           SlickConfig.from_params(params), args.out, args.group_by, study,
                           shape=args.shape, sample=args.sample,
                           budget=Budget(args.max_answer_words, args.max_prompt_words,
                                         args.judge_all))
    a = report["auditable"]
    print(f"[knowshift] {a['rows']} rows ({report['format']['shape']}): {a['examples']} of "
          f"{a['examples'] + a['skipped']} examples judged ({a['share']:.0%}), {a['skipped']} "
          "skipped" + (f": {rows.top_skips(a)}" if a["skipped"] else ""))
    if report["exemplar_fallback"]:
        print(f"[knowshift] exemplars: {report['exemplars']} ({report['exemplar_fallback']})")
    sample = report["sample"]
    shares = ", ".join(f"{c} {v['share']:.0%}" + (f" [{v['low']:.0%}, {v['high']:.0%}]"
                                                  if sample else "")
                       for c, v in report["mix"].items())
    what = f"a sample of {sample['n']} of {sample['of']}" if sample else report["n_examples"]
    if report["n_examples"]:
        print(f"[knowshift] audited {what} judged examples: {shares}")
    rec = report["recommendation"]
    print(f"[knowshift] recommendation: {rec['action']}: {rec['reason']}")
    for name, path in report["files"].items():
        print(f"[knowshift] {name}: {path}")
    if args.fail_above is None:
        return judge.EXIT_OK
    passed, why = judge.gate(report, args.fail_above)
    print(f"[knowshift] gate: {'passed' if passed else 'FAILED'}: {why}",
          file=sys.stdout if passed else sys.stderr)
    return judge.EXIT_OK if passed else judge.EXIT_GATE


def _plan(args) -> int:
    from pathlib import Path

    from . import workplan
    from .core.files import write_json
    if args.save_costs and not args.measure:
        raise ParameterError("--save-costs needs --measure")
    if args.costs and args.measure:
        raise ParameterError("give --measure or --costs, not both")
    overrides = dict(parse_override(p) for p in args.param)
    params = resolve(args.profile, overrides).with_paths_resolved(Path.cwd())
    device = args.device or params.device
    costs = workplan.Costs.read(args.costs) if args.costs else None
    if args.measure:
        costs = workplan.measure_costs(params.model, device, params)
        if args.save_costs:
            write_json({"costs": asdict(costs)}, args.save_costs)
    if args.workers < 1:
        raise ParameterError(f"--workers must be at least 1, not {args.workers}")
    plan = workplan.make_plan(params, run_dir_for(args.profile, args.run_dir), device, costs,
                              args.gpu_memory, profile=args.profile, workers=args.workers)
    print(plan.report())
    if args.json:
        write_json(plan.as_dict(), args.json)
    return 0


def _book(args) -> int:
    run = RunFolder(run_dir_for(args.profile, args.run_dir))
    index = build.build_html(run.root)
    print(f"[knowshift] book: {index}")
    if args.check:
        shots = {f"{c}.html": run.book_screenshot(c) for c in run.SCREENSHOT_CHAPTERS}
        report = check.check(index, screenshots=shots)
        report["problems"] += check.layouts(index)["problems"]  # as read at 1280 px and 390 px
        print(f"[knowshift] checked {len(report['pages'])} pages, {report['figures']} figures, "
              f"{report['formulas']} formulas, {report['internal_links']} internal links in "
              f"Chromium; screenshots: {', '.join(str(p) for p in shots.values())}")
        for problem in report["problems"]:
            print(f"knowshift: book problem: {problem}", file=sys.stderr)
        if report["problems"]:
            return 1
    if args.publish:
        print(f"[knowshift] published: {build.publish(run.root, args.publish)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

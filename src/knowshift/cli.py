"""The ``knowshift`` command line: run study stages through papermill."""

from __future__ import annotations

import argparse
import sys

from . import audit, book, bookcheck, pipeline
from .errors import KnowshiftError
from .layout import STAGE_NAMES, RunFolder, run_folder
from .params import DEFAULT_PROFILE, SCHEMA, describe, parse_override, profile_names, resolve
from .slick import SlickConfig


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
                     help=f"stages to run: {STAGE_NAMES} (default: all)")
    run.add_argument("--profile", default=DEFAULT_PROFILE,
                     help=f"a profile name {profile_names()} or a .yaml file "
                          f"(default: {DEFAULT_PROFILE})")
    run.add_argument("--run-dir", help="run folder (default: runs/<profile>)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a profile parameter, e.g. -p n_train=60")
    run.add_argument("--force", action="store_true", help="rerun the named stages even if current")
    run.add_argument("--no-book", action="store_true",
                     help="do not build the book after the stages (built when all stages run)")
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
    audit = sub.add_parser("audit", help="audit a question-answer fine-tuning file before training",
                           description="Run SliCK on every example of DATA (.jsonl, .csv or "
                           ".parquet with 'question' and 'answer' or 'answers'; optional "
                           "'relation') and write a report with the category mix, the examples "
                           "most likely Unknown, the expected accuracy effect and a "
                           "recommendation, plus filtered and IDK-relabelled files. SliCK's "
                           "settings, the model and the device come from --profile unless "
                           "given here.")
    audit.add_argument("data", metavar="DATA", help="the fine-tuning file to audit")
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
        overrides = dict(parse_override(p) for p in args.param)
        run_dir = pipeline.run(args.profile, args.run_dir, args.stages or None, overrides,
                               force=args.force, book=False if args.no_book else None)
        print(f"[knowshift] results in {run_dir}")
        return 0
    except KnowshiftError as err:
        print(f"knowshift: error: {err}", file=sys.stderr)
        return 2


def _audit(args) -> int:
    study = args.study
    if study is None:
        default = run_folder(DEFAULT_PROFILE)
        study = default if RunFolder(default).path("points").is_file() else "paper"
    given = {name: getattr(args, name) for name in ("model", *AUDIT_FLAGS.values())
             if getattr(args, name) is not None}
    params = resolve(args.profile, given)
    report = audit.run(args.data, params.model, params.device, SlickConfig.from_params(params),
                       args.out, args.group_by, study)
    shares = ", ".join(f"{c} {v['share']:.0%}" for c, v in report["mix"].items())
    rec = report["recommendation"]
    print(f"[knowshift] audited {report['n_examples']} examples: {shares}")
    print(f"[knowshift] recommendation: {rec['action']}: {rec['reason']}")
    for name, path in report["files"].items():
        print(f"[knowshift] {name}: {path}")
    return 0


def _book(args) -> int:
    run = RunFolder(run_folder(args.profile, args.run_dir))
    index = book.build(run.root)
    print(f"[knowshift] book: {index}")
    if args.check:
        shots = {f"{c}.html": run.book_screenshot(c) for c in run.SCREENSHOT_CHAPTERS}
        report = bookcheck.check(index, screenshots=shots)
        print(f"[knowshift] checked {len(report['pages'])} pages, {report['figures']} figures, "
              f"{report['formulas']} formulas, {report['internal_links']} internal links in "
              f"Chromium; screenshots: {', '.join(str(p) for p in shots.values())}")
        for problem in report["problems"]:
            print(f"knowshift: book problem: {problem}", file=sys.stderr)
        if report["problems"]:
            return 1
    if args.publish:
        print(f"[knowshift] published: {book.publish(run.root, args.publish)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

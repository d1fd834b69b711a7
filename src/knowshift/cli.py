"""The ``knowshift`` command line: run study stages through papermill."""

from __future__ import annotations

import argparse
import sys

from . import pipeline
from .config import PARAMETERS, parse_override, profile_names
from .errors import KnowshiftError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="knowshift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run study stages (all by default), skipping current ones")
    run.add_argument("stages", nargs="*", metavar="STAGE",
                     help=f"stages to run: {[s.name for s in pipeline.STAGES]} (default: all)")
    run.add_argument("--profile", default="workshop",
                     help=f"a profile name {profile_names()} or a .yaml file (default: workshop)")
    run.add_argument("--run-dir", help="run folder (default: runs/<profile>)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a profile parameter, e.g. -p n_train=60")
    run.add_argument("--force", action="store_true", help="rerun the named stages even if current")
    sub.add_parser("params", help="list the parameters a profile may set")
    args = parser.parse_args(argv)
    try:
        if args.command == "params":
            for name, (types, what) in PARAMETERS.items():
                print(f"{name:16s} {'/'.join(t.__name__ for t in types):12s} {what}")
            return 0
        overrides = dict(parse_override(p) for p in args.param)
        run_dir = pipeline.run(args.profile, args.run_dir, args.stages or None, overrides,
                               force=args.force)
        print(f"[knowshift] results in {run_dir}")
        return 0
    except KnowshiftError as err:
        print(f"knowshift: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Do a run's intervals cover what a fresh set of fine-tuning seeds gives? The seeds of one or
more run folders of the same study (the same study set and SliCK labels: `reference` and
`replication`) are pooled and split into two disjoint halves in every way; each half is read by
the package's own code (stage 5's linear model, then the findings' estimates and verdicts), and
for each judged finding the difference between the halves is set beside what the halves' own
standard errors predict for it.

    python benchmarks/seed_halves.py runs/reference runs/replication [--half 5]

Per finding it prints: the split between the run folders as they are (the first folder's seeds
against the rest), then over every split: the share in which one half's 95 % interval holds
the other half's estimate, against the share expected if the intervals are right (independent
halves with equal standard errors: P(|t_df| <= t_crit / sqrt 2)); and the ratio of the spread
of the difference between halves (root mean square over splits) to the spread its standard
errors predict (root mean square of sqrt(se_a^2 + se_b^2)). A ratio near 1 says the intervals
size what fresh seeds do; above 1, they understate it. For a plain mean of fixed per-seed values
(a t interval across seeds) the ratio is 1 over all splits by construction (the mean square
difference of two halves' means and their summed squared standard errors both equal
s^2 (1/n_a + 1/n_b)); it tests the linear model's clustered intervals, and findings that pick
what they compare from the half's own data (the best or worst set); the script also refits that
model clustered by seed rather than by run (seed x mix), the seed being what a fresh study
draws anew. Splits share seeds, so they are not independent readings: the figures describe the
pooled seeds, they do not test them.

A reference run's per-seed tables are kept in `benchmarks/data/` (its README says how they were
made), so that a replication run on another day can be pooled with them.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from knowshift.core import stats
from knowshift.core.files import write_parquet
from knowshift.core.layout import RunFolder
from knowshift.book import findings as pages
from knowshift.study import findings, regression

PER_SEED = ("results", "checkpoints", "metrics")      # the products a half keeps its seeds of


def pooled(run_dirs: list[Path]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[set]]:
    """The SliCK table (the same in every folder, else the runs are not one study), each
    per-seed product of all folders stacked, and each folder's seeds (which must not overlap)."""
    runs = [RunFolder(d) for d in run_dirs]
    slick = runs[0].read("slick")
    for run in runs[1:]:
        other = run.read("slick")
        if not (other.set_index("id")["category"].sort_index()
                .equals(slick.set_index("id")["category"].sort_index())):
            raise SystemExit(f"{run.root} has other SliCK labels than {runs[0].root}: "
                             "not the same study")
    seeds = [set(run.read("metrics")["seed"]) for run in runs]
    if sum(len(s) for s in seeds) != len(set().union(*seeds)):
        raise SystemExit(f"the run folders share seeds ({seeds}): pool disjoint seed sets")
    tables = {p: pd.concat([run.read(p) for run in runs], ignore_index=True) for p in PER_SEED}
    return slick, tables, seeds


def read_half(slick: pd.DataFrame, tables: dict[str, pd.DataFrame], seeds: tuple[int, ...],
              scratch: Path) -> pd.DataFrame:
    """The findings table of the seeds ``seeds`` alone, as the book would read a run of them."""
    folder = RunFolder(scratch / "-".join(map(str, seeds)))
    write_parquet(slick, folder.path("slick"))
    for product, table in tables.items():
        write_parquet(table[table["seed"].isin(seeds)].reset_index(drop=True),
                      folder.path(product))
    regression.run_stage(folder.root, params=None)
    return findings.compare(folder.root)


def expected_coverage(df: float) -> float:
    """P(one half's interval holds the other's estimate) for right intervals, equal errors."""
    crit = stats.t_critical(df)
    return float(2 * sps.t.cdf(crit / math.sqrt(2), df) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--half", type=int, default=None,
                        help="seeds per half (default: half of the pooled seeds)")
    args = parser.parse_args()
    slick, tables, folder_seeds = pooled(args.run_dirs)
    seeds = sorted(set(tables["metrics"]["seed"]))
    half = args.half or len(seeds) // 2
    if not 2 <= half <= len(seeds) - 2:
        raise SystemExit(f"{len(seeds)} seeds cannot make halves of {half} and "
                         f"{len(seeds) - half} with an interval each (>= 2 seeds)")
    first = tuple(sorted(folder_seeds[0]))
    splits = [(a, tuple(s for s in seeds if s not in a))
              for a in itertools.combinations(seeds, half)]
    if half * 2 == len(seeds):               # (a, b) and (b, a) are the same split
        splits = [(a, b) for a, b in splits if a[0] == seeds[0]]
    print(f"{len(seeds)} seeds {seeds}; {len(splits)} splits into {half} + "
          f"{len(seeds) - half}; as run: {list(first)} against the rest")
    readings: dict[tuple[int, ...], pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (a, b) in enumerate(splits, 1):
            for s in (a, b):
                if s not in readings:
                    readings[s] = read_half(slick, tables, s, Path(tmp))
            print(f"\r  split {i}/{len(splits)}", end="", flush=True)
    print()
    judged = [i for i, v in enumerate(readings[splits[0][0]]["verdict"]) if v != "-"]
    rows = []
    for i in judged:
        diffs, predicted, covered, expected = [], [], [], []
        for a, b in splits:
            ra, rb = readings[a].iloc[i], readings[b].iloc[i]
            if np.isnan(ra["se"]) or np.isnan(rb["se"]):
                continue
            diffs.append(ra["effect"] - rb["effect"])
            predicted.append(math.hypot(ra["se"], rb["se"]))
            covered += [ra["low"] <= rb["effect"] <= ra["high"],
                        rb["low"] <= ra["effect"] <= rb["high"]]
            expected += [expected_coverage(ra["df"]), expected_coverage(rb["df"])]
        rest = tuple(s for s in seeds if s not in first)
        as_run = ""
        if first in readings and rest in readings:
            ra, rb = readings[first].iloc[i], readings[rest].iloc[i]
            z = (ra["effect"] - rb["effect"]) / math.hypot(ra["se"], rb["se"])
            as_run = (f"{100 * ra['effect']:.1f} vs {100 * rb['effect']:.1f} "
                      f"(z {z:+.2f}; {ra['verdict']} / {rb['verdict']})")
        rows.append({"#": i + 1, "finding": readings[splits[0][0]].iloc[i]["finding"],
                     "as run": as_run,
                     "covered": f"{np.mean(covered):.0%}" if covered else "-",
                     "expected": f"{np.mean(expected):.0%}" if expected else "-",
                     "spread / predicted": f"{_rms(diffs) / _rms(predicted):.2f}"
                     if diffs else "-",
                     "same verdict, both halves": _verdict_agreement(
                         readings, splits, i)})
    print(pages.to_markdown(pd.DataFrame(rows)))
    print("\nThe linear model over all pooled seeds, clustered by run and by seed:")
    points = tables["metrics"][tables["metrics"]["kind"] == "mix"]
    for target in ("test_accuracy", "ood_accuracy"):
        for by in ("run", "seed"):
            print(f"  {target:14s} by {by:4s}: {_fit(points, target, by)}")


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _fit(points: pd.DataFrame, target: str, by: str) -> str:
    """β_kn and β_unk with 95 % intervals from stage 5's own fit, errors clustered by run
    (seed x mix) or by seed (the mix left out of the run's name, so a seed's mixes share one
    cluster)."""
    res = regression.fit(points if by == "run" else points.assign(variant=""), target)
    ci = res.conf_int()
    return "; ".join(f"{name} {100 * res.params[term]:.1f} [{100 * ci.loc[term, 0]:.1f}, "
                     f"{100 * ci.loc[term, 1]:.1f}] (se {100 * res.bse[term]:.2f})"
                     for name, term in (("β_kn", "known_share"), ("β_unk", "unknown_share")))


def _verdict_agreement(readings, splits, i) -> str:
    """The share of splits in which both halves give the same verdict on direction."""
    same = [readings[a].iloc[i]["verdict"] == readings[b].iloc[i]["verdict"] for a, b in splits]
    return f"{np.mean(same):.0%}"


if __name__ == "__main__":
    main()

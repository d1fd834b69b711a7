"""The audit's applicability check against hand labels (docs/audit.md; its figures: benchmarks/README.md):
per labelled set, the precision of what a default audit judges, the share of non-factual
examples it skips, the share of factual ones it judges, and the misses; then the share of the
built-in fact set's (all factual) questions it skips. No model; a few seconds.

    python benchmarks/audit_scope.py
"""

from __future__ import annotations

from pathlib import Path

from knowshift.audit.rows import check_on_labels
from knowshift.audit.scope import why_not
from knowshift.study.offline_facts import build_offline_facts

SETS = Path(__file__).resolve().parent.parent / "tests" / "data"


def main() -> None:
    for name in ("applicability", "applicability_heldout"):
        rows = check_on_labels(SETS / name)
        judged, other, facts = rows[rows["judged"]], rows[~rows["factual"]], rows[rows["factual"]]
        print(f"{name}: {len(rows)} examples ({len(facts)} factual); precision of the judged "
              f"{judged['factual'].sum()}/{len(judged)}; non-factual skipped "
              f"{(~other['judged']).sum()}/{len(other)}; factual judged "
              f"{facts['judged'].sum()}/{len(facts)}")
        for miss in rows[rows["judged"] != rows["factual"]].itertuples():
            print(f"  missed: {miss.file} line {miss.line} turn {miss.turn} ({miss.kind}): "
                  f"{miss.reason or 'judged'}")
    table = build_offline_facts().sample(20_000, random_state=0)
    skipped = sum(why_not(q, a) is not None for q, a in zip(table["question"], table["answer"]))
    print(f"built-in fact set: {skipped} of {len(table)} questions skipped")


if __name__ == "__main__":
    main()

"""Fine-tuning sets built from the SliCK table (Gekhman et al., 2024, section 3 and 5).

Every set is a list of train questions with a target answer. Kinds:

- ``mix``: |D| examples, a controlled share Unknown and the rest Known (HighlyKnown,
  MaybeKnown or WeaklyKnown). Sets are nested: the Unknown examples of the 25 % set are among
  those of the 50 % set, and so on, so the sweep changes one thing at a time.
- ``pure``: one SliCK category only (D_HighlyKnown, ..., D_Unknown), or ``Natural`` (the natural
  mix of the train split), all of one size. ``pure_size: auto`` sizes them as the paper does
  (section 5): each relation gives every pure set the count of its smallest asked category, so
  the sets share one relation mix; the sum is capped at |D| (relations scaled down alike).
- ``filtered``: a mix with its Unknown examples removed (a smaller D).
- ``idk``: a mix with its Unknown examples relabelled "I don't know".

Within a set, examples are spread as evenly over relations as the pool allows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import ParameterError
from ..core.schema import CATEGORIES, IDK_ANSWER, KNOWN, NATURAL, share_clash, share_label

SET_COLUMNS = ["variant", "kind", "unknown_share", "category", "id", "relation", "question",
               "target", "answers", "slick_category", "known", "relabelled"]


def balanced_order(pool: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``pool`` in a seeded order that takes one example per relation in turn, so any prefix
    of it is spread evenly over relations (and prefixes are nested)."""
    shuffled = pool.sample(frac=1.0, random_state=seed)
    turn = shuffled.groupby("relation").cumcount()
    relation_rank = shuffled["relation"].map(
        {r: i for i, r in enumerate(np.random.default_rng(seed).permutation(
            sorted(pool["relation"].unique())))})
    return shuffled.assign(_t=turn, _r=relation_rank).sort_values(["_t", "_r"]).drop(
        columns=["_t", "_r"])


def _take(pool: pd.DataFrame, n: int, what: str) -> pd.DataFrame:
    if n > len(pool):
        raise ParameterError(f"{what} needs {n} train examples but the SliCK table has only "
                             f"{len(pool)}; lower the set size or label more train questions")
    return pool.iloc[:n]


def _rows(variant: str, kind: str, examples: pd.DataFrame, share: float | None,
          category: str | None, idk: bool = False) -> pd.DataFrame:
    unknown = ~examples["known"].to_numpy()
    relabel = unknown & idk
    return pd.DataFrame({
        "variant": variant, "kind": kind, "unknown_share": share, "category": category,
        "id": examples["id"].to_numpy(), "relation": examples["relation"].to_numpy(),
        "question": examples["question"].to_numpy(),
        "target": np.where(relabel, IDK_ANSWER, examples["answer"].to_numpy()),
        "answers": examples["answers"].to_numpy(),
        "slick_category": examples["category"].astype(str).to_numpy(),
        "known": examples["known"].to_numpy(), "relabelled": relabel})


def train_pool(slick_table: pd.DataFrame) -> pd.DataFrame:
    """The questions fine-tuning sets are drawn from: the in-distribution train split."""
    return slick_table[(slick_table["split"] == "train") & ~slick_table["ood"]]


def pure_quotas(slick_table: pd.DataFrame, pure_categories: list[str], cap: int) -> pd.Series:
    """Per relation, the examples each ``pure_size: auto`` set takes: the count of the
    relation's smallest asked SliCK category (every relation's size where only Natural is
    asked), scaled down alike when the sum is over ``cap`` (largest remainders get the spare
    places, ties by relation)."""
    train = train_pool(slick_table)
    asked = [c for c in pure_categories if c in CATEGORIES]
    counts = train.groupby(["relation", "category"], observed=True).size().unstack(fill_value=0)
    if asked:
        least = counts.reindex(columns=asked, fill_value=0).min(axis=1)
    else:
        least = counts.sum(axis=1)
    least = least.sort_index().astype(int)
    if least.sum() <= cap:
        return least
    exact = least * cap / least.sum()
    quota = np.floor(exact).astype(int)
    spare = int(cap - quota.sum())
    order = (exact - quota).sort_values(ascending=False, kind="stable").index[:spare]
    quota[order] += 1
    return quota


def size_problem(slick_table: pd.DataFrame, d_size: int, unknown_shares: list[float],
                 pure_size: int | str = 0, pure_categories: list[str] | None = None,
                 mitigation_shares: list[float] | None = None) -> str | None:
    """Why the SliCK table cannot fill the sets asked for (None if it can), with the counts it
    has: checked before any fine-tuning, so a GPU run stops at once, with SliCK's labels kept."""
    train = train_pool(slick_table)
    counts = train["category"].astype(str).value_counts()
    have = {c: int(counts.get(c, 0)) for c in CATEGORIES}
    n_known = sum(have[c] for c in KNOWN)
    short = []
    for share in [*unknown_shares, *(mitigation_shares or [])]:
        n_unk = int(round(share * d_size))
        if d_size - n_unk > n_known or n_unk > len(train) - n_known:
            parts = [f"{n} {what}" for n, what in ((d_size - n_unk, "Known"), (n_unk, "Unknown"))
                     if n]
            short.append(f"a {share_label(share)} Unknown mix of d_size {d_size} needs "
                         f"{' and '.join(parts)}")
    if pure_size == "auto":
        if pure_categories and pure_quotas(slick_table, pure_categories, d_size).sum() == 0:
            short.append("pure_size auto is 0: no relation has examples of every category "
                         "in pure_categories")
        small = []
    else:
        small = [c for c in pure_categories or [] if c in have and have[c] < pure_size]
        if NATURAL in (pure_categories or []) and len(train) < pure_size:
            small.append(NATURAL)
    if small:
        short.append(f"pure_size {pure_size} is more than SliCK put in "
                     f"{', '.join(f'D_{c}' for c in small)}")
    if not short:
        return None
    found = ", ".join(f"{c} {n}" for c, n in have.items())
    return (f"{'; '.join(short)}, but the {len(train)} train questions SliCK labelled hold "
            f"{found} (Known {n_known}): lower d_size / pure_size or drop categories from "
            "pure_categories (SliCK's labels are kept, so the rerun starts at fine-tuning), or "
            "raise n_train (a new study set, labelled again)")


def build_sets(slick_table: pd.DataFrame, d_size: int, unknown_shares: list[float],
               pure_size: int | str = 0, pure_categories: list[str] | None = None,
               mitigation_shares: list[float] | None = None, *, seed: int) -> pd.DataFrame:
    """All fine-tuning sets of the study as one long table (one row per example per set)."""
    if d_size < 1:
        raise ParameterError(f"d_size (|D|) must be >= 1, got {d_size}")
    bad = [s for s in [*unknown_shares, *(mitigation_shares or [])] if not 0 <= s <= 1]
    if bad:
        raise ParameterError(f"Unknown shares must lie in [0, 1], got {bad}")
    for name, values in (("unknown_shares", unknown_shares),
                         ("mitigation_shares", mitigation_shares or [])):
        if clash := share_clash(values):
            raise ParameterError(f"{name} {clash}")
    if problem := size_problem(slick_table, d_size, unknown_shares, pure_size, pure_categories,
                               mitigation_shares):
        raise ParameterError(problem)
    train = train_pool(slick_table)
    known = balanced_order(train[train["known"]], seed)
    unknown = balanced_order(train[~train["known"]], seed + 1)
    parts = []

    def mix(share: float) -> pd.DataFrame:
        n_unk = int(round(share * d_size))
        return pd.concat([_take(known, d_size - n_unk, f"a {share:.0%} Unknown set (Known part)"),
                          _take(unknown, n_unk, f"a {share:.0%} Unknown set (Unknown part)")])

    for share in unknown_shares:
        parts.append(_rows(f"mix_{share_label(share)}", "mix", mix(share), share, None))
    for share in mitigation_shares or []:
        examples = mix(share)
        parts.append(_rows(f"filtered_{share_label(share)}", "filtered",
                           examples[examples["known"]], share, None))
        parts.append(_rows(f"idk_{share_label(share)}", "idk", examples, share, None, idk=True))
    quotas = (pure_quotas(slick_table, pure_categories or [], d_size)
              if pure_size == "auto" else None)
    for category in pure_categories or []:
        if category == NATURAL:
            pool = balanced_order(train, seed + 2)
        elif category in CATEGORIES:
            pool = balanced_order(train[train["category"] == category], seed + 2)
        else:
            raise ParameterError(f"unknown category {category!r}; use one of "
                                 f"{[*CATEGORIES, NATURAL]}")
        if quotas is None:
            examples = _take(pool, pure_size, f"D_{category}")
        else:                    # each relation's quota, in the pool's balanced order
            examples = pool[pool.groupby("relation").cumcount().to_numpy()
                            < pool["relation"].map(quotas).fillna(0).to_numpy()]
        share = float((~examples["known"]).mean())
        parts.append(_rows(f"pure_{category}", "pure", examples, share, category))
    sets = pd.concat(parts, ignore_index=True)
    return sets[SET_COLUMNS]


def eval_sets(slick_table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The held-out questions every variant is scored on: in-distribution dev (for EARLY_STOP)
    and test, and out-of-distribution test."""
    t = slick_table
    return {"dev": t[(t["split"] == "dev") & ~t["ood"]],
            "test": t[(t["split"] == "test") & ~t["ood"]],
            "ood": t[(t["split"] == "test") & t["ood"]]}


"""Seaborn figures of the study. Each function takes a tidy table and returns a Figure; the
notebooks save them with :func:`knowshift.io.save_figure` (PNG and SVG)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .slick import CATEGORIES

PALETTE = dict(zip(CATEGORIES, ["#1a9850", "#91cf60", "#fc8d59", "#d73027"]))


def category_mix(table: pd.DataFrame, names: dict[str, str] | None = None):
    """Share of each SliCK category per relation (stacked bars), OOD relations marked."""
    df = table.assign(label=[f"{r} {names.get(r, '') if names else ''}".strip()
                             + (" (OOD)" if o else "") for r, o in zip(table["relation"],
                                                                       table["ood"])])
    order = sorted(df["label"].unique(), key=lambda s: ("(OOD)" in s, s))
    df = df.assign(label=pd.Categorical(df["label"], categories=order)).sort_values("label")
    df["label"] = df["label"].astype(str)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(order) + 1.5))
    sns.histplot(data=df, y="label", hue="category", hue_order=CATEGORIES, palette=PALETTE,
                 multiple="fill", discrete=True, shrink=0.85, stat="count", ax=ax,
                 legend=True)
    ax.set(xlabel="share of questions", ylabel="relation",
           title="SliCK knowledge categories per relation")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title="category")
    return fig


def category_vs_popularity(table: pd.DataFrame, bins: int = 4):
    """Category mix against subject popularity, in popularity quantiles within each relation
    (popularity units differ between sources: population, games played, critic reviews)."""
    df = table.dropna(subset=["popularity"]).copy()
    fig, ax = plt.subplots(figsize=(7, 4))
    if df.empty:
        ax.text(0.5, 0.5, "no popularity data in this fact set", ha="center", va="center")
        ax.set_axis_off()
        return fig
    df["quantile"] = df.groupby("relation")["popularity"].transform(
        lambda s: pd.qcut(s.rank(method="first"), q=min(bins, len(s)), labels=False) + 1
        if len(s) > 1 else pd.Series(np.ones(len(s)), index=s.index))
    sns.histplot(data=df, x="quantile", hue="category", hue_order=CATEGORIES, palette=PALETTE,
                 multiple="fill", discrete=True, shrink=0.85, ax=ax)
    ax.set(xlabel=f"popularity quantile within relation (1 = least popular, {bins} = most)",
           ylabel="share of questions", title="What the model knows vs how popular the subject is")
    ax.set_xticks(range(1, int(df["quantile"].max()) + 1))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title="category")
    return fig


def relation_sizes(summary: pd.DataFrame):
    """Questions per relation and split in the fact set (log scale)."""
    long = summary.melt(id_vars=["relation", "ood"], value_vars=[
        c for c in ("train", "dev", "test") if c in summary.columns],
        var_name="split", value_name="questions")
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.barplot(data=long, x="relation", y="questions", hue="split", ax=ax)
    ax.set_yscale("log")
    ax.set(title="Questions per relation and split", xlabel="relation", ylabel="questions (log)")
    ax.tick_params(axis="x", rotation=45)
    return fig

"""Seaborn figures of the study. Each function takes a tidy table and returns a Figure; the
notebooks save them with :func:`knowshift.files.save_figure` (PNG and SVG)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .schema import CATEGORIES, NATURAL

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


CHECKPOINT_ORDER = ["EARLY_STOP", "CONVERGENCE"]


def accuracy_vs_unknown(checkpoints: pd.DataFrame):
    """Test accuracy (in- and out-of-distribution) against the share of Unknown examples in
    the fine-tuning set, at EARLY_STOP and CONVERGENCE (the paper's Figure 1)."""
    mix = checkpoints[checkpoints["kind"] == "mix"]
    long = mix.melt(id_vars=["variant", "unknown_share", "checkpoint"],
                    value_vars=["test_accuracy", "ood_accuracy"], var_name="test set",
                    value_name="accuracy")
    long["test set"] = long["test set"].map({"test_accuracy": "in-distribution",
                                             "ood_accuracy": "out-of-distribution"})
    long["% Unknown"] = (100 * long["unknown_share"]).round().astype(int)
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=long, x="% Unknown", y="accuracy", hue="checkpoint",
                 hue_order=CHECKPOINT_ORDER, style="test set", markers=True, ax=ax)
    ax.set(title="Test accuracy vs share of Unknown fine-tuning examples",
           xlabel="% Unknown in the fine-tuning set", ylabel="test accuracy (exact match)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1))
    return fig


def fit_curves(curves: pd.DataFrame):
    """Train accuracy of the Known and Unknown subsets per epoch, one panel per % Unknown
    (the paper's Figure 3: Unknown examples are fitted later)."""
    df = curves.assign(pct=(100 * curves["unknown_share"]).round().astype(int).astype(str) + " %")
    grid = sns.relplot(data=df, x="epoch", y="train_accuracy", hue="subset",
                       hue_order=["Known", "Unknown"], palette={"Known": "#1a9850",
                                                                "Unknown": "#d73027"},
                       col="pct", kind="line", marker="o", height=3, aspect=0.9)
    grid.set_titles("{col_name} Unknown")
    grid.set_axis_labels("epoch", "train accuracy (fitted share)")
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    grid.figure.suptitle("How fast Known and Unknown fine-tuning examples are fitted", y=1.04)
    return grid.figure


def regression(points: pd.DataFrame, fits: dict):
    """Observed vs fitted accuracy for the linear model, in- and out-of-distribution."""
    frames = []
    for (name, res), target in zip(fits.items(), ["test_accuracy", "ood_accuracy"]):
        frames.append(pd.DataFrame({"model": name, "observed": points[target],
                                    "fitted": res.fittedvalues,
                                    "N_unk/|D| fitted": points["fitted_unknown_share"]}))
    df = pd.concat(frames)
    grid = sns.relplot(data=df, x="fitted", y="observed", hue="N_unk/|D| fitted", col="model",
                       palette="rocket_r", height=3.5)
    for ax, (name, res) in zip(grid.axes.flat, fits.items()):
        lo, hi = df[["fitted", "observed"]].min().min(), df[["fitted", "observed"]].max().max()
        ax.plot([lo, hi], [lo, hi], ls="--", c="grey", lw=1)
        ax.set_title(f"{name}: R² = {res.rsquared:.2f}, "
                     f"b_unk = {res.params['unknown_share']:.2f}")
    grid.set_axis_labels("fitted accuracy", "observed accuracy")
    return grid.figure


def category_heatmap(table: pd.DataFrame):
    """Test accuracy by test category for each category-pure fine-tuning set."""
    order_rows = [f"D_{c}" for c in [*CATEGORIES, NATURAL]]
    order_cols = [*CATEGORIES, "All"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, checkpoint in zip(axes, CHECKPOINT_ORDER):
        pivot = (table[table["checkpoint"] == checkpoint]
                 .pivot_table(index="train_set", columns="test_category", values="accuracy")
                 .reindex(index=[r for r in order_rows if r in set(table["train_set"])],
                          columns=[c for c in order_cols if c in set(table["test_category"])]))
        sns.heatmap(100 * pivot, annot=True, fmt=".0f", cmap="Greens", vmin=0, vmax=100,
                    cbar=checkpoint == "CONVERGENCE", ax=ax)
        ax.set(title=checkpoint, xlabel="test questions' category", ylabel="fine-tuned on")
    fig.suptitle("Test accuracy (%) by knowledge category", y=1.02)
    return fig


def mitigations(table: pd.DataFrame):
    """Plain vs filtered vs IDK-relabelled sets: accuracy, answer rate, accuracy on answered."""
    long = table.melt(id_vars=["kind", "checkpoint", "set"],
                      value_vars=["accuracy", "answer_rate", "accuracy_answered"],
                      var_name="metric", value_name="value")
    kinds = {"mix": "plain", "filtered": "Unknown filtered out", "idk": "Unknown relabelled IDK"}
    long["kind"] = long["kind"].map(kinds)
    long["metric"] = long["metric"].map({"accuracy": "accuracy", "answer_rate": "answer rate",
                                         "accuracy_answered": "accuracy\non answered"})
    grid = sns.catplot(data=long, x="metric", y="value", hue="kind", col="checkpoint",
                       row="set", kind="bar", height=3, aspect=1.3,
                       col_order=CHECKPOINT_ORDER, hue_order=list(kinds.values()))
    grid.set_axis_labels("", "share")
    grid.figure.suptitle("Mitigations against the plain fine-tuning set", y=1.03)
    return grid.figure


def audit_mix(table: pd.DataFrame, by: str | None = None):
    """An audited set's SliCK category mix: one bar overall, or one bar per value of ``by``."""
    df = table.assign(group=table[by].astype(str) if by else "all examples")
    order = sorted(df["group"].unique())
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(order) + 1.4))
    sns.histplot(data=df.assign(category=df["category"].astype(str)), y="group",
                 hue="category", hue_order=CATEGORIES, palette=PALETTE, multiple="fill",
                 discrete=True, shrink=0.8, ax=ax)
    ax.set(xlabel="share of examples", ylabel=by or "",
           title="What the model already knows" + (f", by {by}" if by else ""))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title="category")
    return fig

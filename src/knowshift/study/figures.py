"""Seaborn figures of the study. Each function takes a tidy table and returns a Figure; the
notebooks save them with :func:`knowshift.core.files.save_figure` (PNG and SVG)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..core.schema import CATEGORIES, NATURAL

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


def _band(ax, x, table: pd.DataFrame, label: str, **style):
    """A mean line with its 95 % interval as a band (or error bars for one point)."""
    line, = ax.plot(x, table["value"], label=label, **style)
    if table["low"].notna().any():
        ax.fill_between(x, table["low"], table["high"], color=line.get_color(), alpha=0.15,
                        lw=0)
    return line


def accuracy_vs_unknown(table: pd.DataFrame):
    """Test accuracy (in- and out-of-distribution) against the share of Unknown examples in
    the fine-tuning set, at EARLY_STOP and CONVERGENCE, with 95 % intervals (the paper's
    Figure 1). ``table``: :func:`knowshift.study.checkpoints.accuracy_table` of the mixes by
    ``unknown_share`` and ``checkpoint``."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    names = {"test": "in-distribution", "ood": "out-of-distribution"}
    for ax, (set_name, title) in zip(axes, names.items()):
        for checkpoint, marker in zip(CHECKPOINT_ORDER, ("o", "s")):
            t = (table[(table["set"] == set_name) & (table["checkpoint"] == checkpoint)]
                 .sort_values("unknown_share").rename(columns={"accuracy": "value"}))
            _band(ax, 100 * t["unknown_share"], 100 * t[["value", "low", "high"]], checkpoint,
                  marker=marker)
        ax.set(title=f"{title} test questions", xlabel="% Unknown in the fine-tuning set")
    axes[0].set_ylabel("test accuracy (exact match, %)")
    axes[1].legend(title="checkpoint (band: 95 % interval)", loc="upper left",
                   bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def fit_curves(curves: pd.DataFrame):
    """Train accuracy of the Known and Unknown subsets per epoch, one panel per % Unknown,
    mean over seeds with its 95 % interval (the paper's Figure 3: Unknown examples are fitted
    later). ``curves``: :func:`knowshift.study.dynamics.fit_curves`."""
    from ..core.stats import over_seeds
    summary = over_seeds(curves, ["unknown_share", "subset", "epoch"], "train_accuracy")
    shares = sorted(summary["unknown_share"].unique())
    fig, axes = plt.subplots(1, len(shares), figsize=(2.6 * len(shares) + 1, 3.2),
                             sharey=True, squeeze=False)
    colours = {"Known": "#1a9850", "Unknown": "#d73027"}
    for ax, share in zip(axes[0], shares):
        for subset, colour in colours.items():
            t = summary[(summary["unknown_share"] == share) & (summary["subset"] == subset)]
            if not t.empty:
                t = t.sort_values("epoch")
                _band(ax, t["epoch"], t, subset, marker="o", color=colour)
        ax.set(title=f"{100 * share:.0f} % Unknown", xlabel="epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[0][0].set_ylabel("train accuracy (fitted share)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle("How fast Known and Unknown fine-tuning examples are fitted "
                 "(band: 95 % interval over seeds)", y=1.02)
    fig.tight_layout()
    return fig


def regression(points: pd.DataFrame, fits: dict):
    """Observed vs fitted accuracy for the linear model, in- and out-of-distribution, one
    point per (seed, mix, epoch)."""
    fig, axes = plt.subplots(1, len(fits), figsize=(5 * len(fits) + 1.5, 4.2), squeeze=False)
    for ax, (name, res), target in zip(axes[0], fits.items(), ["test_accuracy",
                                                               "ood_accuracy"]):
        observed = points.loc[res.fittedvalues.index, target]
        sc = ax.scatter(res.fittedvalues, observed, c=points.loc[res.fittedvalues.index,
                                                                "fitted_unknown_share"],
                        cmap="rocket_r", vmin=0, vmax=1, s=18)
        lo = min(res.fittedvalues.min(), observed.min())
        hi = max(res.fittedvalues.max(), observed.max())
        ax.plot([lo, hi], [lo, hi], ls="--", c="grey", lw=1)
        ci = res.conf_int().loc["unknown_share"]
        ax.set_title(f"{name}\nR² = {res.rsquared:.2f}, β_unk = "
                     f"{100 * res.params['unknown_share']:.1f} "
                     f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]", fontsize=10)
        ax.set(xlabel="fitted accuracy", ylabel="observed accuracy")
    fig.colorbar(sc, ax=axes[0].tolist(), label="N_unk/|D| fitted")
    return fig


def _not_run(message: str):
    """A figure that says what this profile did not run (the page keeps its figure)."""
    fig, ax = plt.subplots(figsize=(8, 1.2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def category_heatmap(table: pd.DataFrame):
    """Test accuracy by test category for each category-pure fine-tuning set."""
    if table.empty:
        return _not_run("No category-pure sets in this profile (pure_categories is empty)")
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


def mitigations(summary: pd.DataFrame):
    """Plain vs filtered vs IDK-relabelled sets: accuracy, answer rate and accuracy on
    answered questions, means over seeds with 95 % intervals. ``summary``:
    :func:`knowshift.study.mitigations.summary`."""
    if summary.empty:
        return _not_run("No mitigation sets in this profile (mitigation_shares is empty)")
    kinds = {"mix": "plain", "filtered": "Unknown filtered out", "idk": "Unknown relabelled IDK"}
    metrics = {"accuracy": "accuracy", "answer_rate": "answer rate",
               "accuracy_answered": "accuracy\non answered"}
    sets = [s for s in ("test", "ood") if s in set(summary["set"])]
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 3 * len(sets) + 0.6), sharey=True,
                             squeeze=False)
    width = 0.8 / len(kinds)
    for row, set_name in zip(axes, sets):
        for ax, checkpoint in zip(row, CHECKPOINT_ORDER):
            for k, (kind, label) in enumerate(kinds.items()):
                t = summary[(summary["set"] == set_name) & (summary["checkpoint"] == checkpoint)
                            & (summary["kind"] == kind)].set_index("metric").reindex(
                                list(metrics))
                x = np.arange(len(metrics)) + (k - 1) * width
                err = np.vstack([t["value"] - t["low"], t["high"] - t["value"]])
                ax.bar(x, t["value"], width, label=label,
                       yerr=None if np.isnan(err).all() else np.nan_to_num(err), capsize=3)
            ax.set_xticks(np.arange(len(metrics)), list(metrics.values()))
            ax.set_title(f"{checkpoint}, {'in-distribution' if set_name == 'test' else 'OOD'}"
                         " test", fontsize=10)
    for row in axes:
        row[0].set_ylabel("share")
    axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle("Mitigations against the plain fine-tuning set (bars: 95 % interval over "
                 "seeds)", y=1.0)
    fig.tight_layout()
    return fig


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

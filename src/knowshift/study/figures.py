"""Seaborn figures of the study. Each function takes a tidy table and returns a Figure; the
notebooks save them with :func:`knowshift.core.files.save_figure` (PNG and SVG).

Every figure is drawn for the book's text column (:data:`WIDTH` inches wide, text no smaller
than :data:`SMALLEST_FONT` points, kept as SVG text), with one colour and marker per SliCK
category, per Known/Unknown subset and per checkpoint in every figure, from the Okabe-Ito
palette, which readers with the common colour-vision deficiencies can tell apart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..core.schema import CATEGORIES, NATURAL

# Okabe & Ito (2008), "Color universal design": distinguishable under deuteranopia,
# protanopia and tritanopia.
OKABE_ITO = {"blue": "#0072B2", "sky": "#56B4E9", "orange": "#E69F00", "vermillion": "#D55E00",
             "green": "#009E73", "purple": "#CC79A7", "yellow": "#F0E442", "grey": "#7F7F7F",
             "black": "#000000"}
PALETTE = dict(zip([*CATEGORIES, NATURAL],
                   [OKABE_ITO[c] for c in ("blue", "sky", "orange", "vermillion", "grey")]))
MARKERS = dict(zip([*CATEGORIES, NATURAL], ["o", "s", "^", "D", "v"]))
SUBSET_COLOURS = {"Known": OKABE_ITO["blue"], "Unknown": OKABE_ITO["vermillion"]}
SUBSET_MARKERS = {"Known": "o", "Unknown": "D"}
CHECKPOINT_STYLE = {"EARLY_STOP": {"color": OKABE_ITO["green"], "marker": "o", "ls": "-"},
                    "CONVERGENCE": {"color": OKABE_ITO["purple"], "marker": "s", "ls": "--"}}
WIDTH = 6.8             # inches: the book's text column at 1280 px, at 96 px per inch
SMALLEST_FONT = 8       # points: 10.7 CSS px at full size, >= 9 px down to 84 % scale
STYLE = {"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 9.5,
         "axes.labelsize": 9, "xtick.labelsize": SMALLEST_FONT,
         "ytick.labelsize": SMALLEST_FONT, "legend.fontsize": SMALLEST_FONT,
         "legend.title_fontsize": SMALLEST_FONT, "figure.titlesize": 10,
         "figure.figsize": (WIDTH, 3.6), "figure.dpi": 96, "axes.spines.top": False,
         "axes.spines.right": False}


def use_style() -> None:
    """The book's figure style for every figure drawn after it."""
    plt.rcParams.update(STYLE)
    sns.set_palette(list(OKABE_ITO.values()))


def _category_legend(ax, fig=None, title="SliCK category") -> None:
    """One legend naming every category, above the plot, in the same order everywhere."""
    handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE[c]) for c in CATEGORIES]
    ax.legend(handles, CATEGORIES, title=title, loc="lower left", bbox_to_anchor=(0, 1.02),
              ncol=4, frameon=False, borderaxespad=0)


def _stacked_shares(df: pd.DataFrame, group: str, order: list[str], ax) -> None:
    """Horizontal bars, one per ``group`` value, split by category share (fill to 1)."""
    shares = (df.groupby([group, "category"], observed=False).size().unstack("category")
              .reindex(index=order, columns=CATEGORIES, fill_value=0).fillna(0))
    shares = shares.div(shares.sum(axis=1).where(lambda n: n > 0, 1), axis=0)
    left = np.zeros(len(shares))
    y = np.arange(len(shares))[::-1]
    for c in CATEGORIES:
        ax.barh(y, shares[c], left=left, color=PALETTE[c], height=0.8, label=c)
        left += shares[c].to_numpy()
    ax.set_yticks(y, shares.index)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f} %"))


def category_mix(table: pd.DataFrame, names: dict[str, str] | None = None):
    """Share of each SliCK category per relation (stacked bars), OOD relations marked."""
    df = table.assign(label=[f"{r} {names.get(r, '') if names else ''}".strip()
                             + (" (OOD)" if o else "") for r, o in zip(table["relation"],
                                                                       table["ood"])])
    order = sorted(df["label"].unique(), key=lambda s: ("(OOD)" in s, s))
    fig, ax = plt.subplots(figsize=(WIDTH, 0.3 * len(order) + 1.3))
    _stacked_shares(df.assign(category=df["category"].astype(str)), "label", order, ax)
    ax.set(xlabel="share of the relation's questions", ylabel="")
    _category_legend(ax)
    fig.tight_layout()
    return fig


def category_vs_popularity(table: pd.DataFrame, bins: int = 4):
    """Category mix against subject popularity, in popularity quantiles within each relation
    (popularity units differ between sources: population, games played, critic reviews)."""
    df = table.dropna(subset=["popularity"]).copy()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.6))
    if df.empty:
        ax.text(0.5, 0.5, "no popularity data in this fact set", ha="center", va="center")
        ax.set_axis_off()
        return fig
    df["quantile"] = df.groupby("relation")["popularity"].transform(
        lambda s: pd.qcut(s.rank(method="first"), q=min(bins, len(s)), labels=False) + 1
        if len(s) > 1 else pd.Series(np.ones(len(s)), index=s.index))
    labels = {q: f"quantile {int(q)}" + (" (least popular)" if q == 1 else
                                         " (most popular)" if q == df["quantile"].max() else "")
              for q in sorted(df["quantile"].unique())}
    df["group"] = df["quantile"].map(labels)
    _stacked_shares(df.assign(category=df["category"].astype(str)), "group",
                    list(labels.values()), ax)
    ax.set(xlabel="share of questions", ylabel="subject popularity\nwithin its relation")
    _category_legend(ax)
    fig.tight_layout()
    return fig


def relation_sizes(summary: pd.DataFrame):
    """Questions per relation and split in the fact set (log scale)."""
    long = summary.melt(id_vars=["relation", "ood"], value_vars=[
        c for c in ("train", "dev", "test") if c in summary.columns],
        var_name="split", value_name="questions")
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    splits = list(dict.fromkeys(long["split"]))
    colours = dict(zip(("train", "dev", "test"),
                       (OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["green"])))
    sns.barplot(data=long, x="relation", y="questions", hue="split", hue_order=splits,
                palette=colours, ax=ax)
    ax.set_yscale("log")
    # plain numbers: minor labels and 10^n superscripts are drawn smaller than the text
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(plt.NullFormatter())
    ax.set(xlabel="relation (Wikidata property)", ylabel="questions (log scale)")
    ax.tick_params(axis="x", rotation=45)
    sns.move_legend(ax, "lower left", bbox_to_anchor=(0, 1.02), ncol=3, frameon=False,
                    title="split")
    fig.tight_layout()
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
    Figure 3a). ``table``: :func:`knowshift.study.checkpoints.accuracy_table` of the mixes by
    ``unknown_share`` and ``checkpoint``."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), sharey=True)
    names = {"test": "in-distribution", "ood": "out-of-distribution (OOD)"}
    for ax, (set_name, title) in zip(axes, names.items()):
        for checkpoint in CHECKPOINT_ORDER:
            t = (table[(table["set"] == set_name) & (table["checkpoint"] == checkpoint)]
                 .sort_values("unknown_share").rename(columns={"accuracy": "value"}))
            _band(ax, 100 * t["unknown_share"], 100 * t[["value", "low", "high"]], checkpoint,
                  **CHECKPOINT_STYLE[checkpoint])
        ax.set(title=f"{title} test questions", xlabel="% Unknown in the fine-tuning set")
    axes[0].set_ylabel("test accuracy (exact match, %)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper left", ncol=2, frameon=False,
               title="checkpoint (band: 95 % interval over seeds)")
    fig.tight_layout(rect=(0, 0, 1, 0.84))
    return fig


def fit_curves(curves: pd.DataFrame):
    """Train accuracy of the Known and Unknown subsets per epoch, one panel per % Unknown,
    mean over seeds with its 95 % interval (the paper's Figure 1: Unknown examples are fitted
    later). ``curves``: :func:`knowshift.study.dynamics.fit_curves`."""
    from ..core.stats import over_seeds
    summary = over_seeds(curves, ["unknown_share", "subset", "epoch"], "train_accuracy")
    shares = sorted(summary["unknown_share"].unique())
    ncols = min(len(shares), 3)
    nrows = -(-len(shares) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 2.3 * nrows + 0.7), sharey=True,
                             sharex=True, squeeze=False)
    for ax, share in zip(axes.flat, shares):
        for subset, colour in SUBSET_COLOURS.items():
            t = summary[(summary["unknown_share"] == share) & (summary["subset"] == subset)]
            if not t.empty:
                t = t.sort_values("epoch")
                _band(ax, t["epoch"], 100 * t[["value", "low", "high"]], subset,
                      marker=SUBSET_MARKERS[subset], color=colour, ms=4)
        ax.set_title(f"{100 * share:.0f} % Unknown in the set")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    for ax in axes.flat[len(shares):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("fitted (train acc., %)")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    handles = [plt.Line2D([], [], color=c, marker=SUBSET_MARKERS[s], label=f"{s} examples")
               for s, c in SUBSET_COLOURS.items()]
    fig.legend(handles=handles, loc="upper left", ncol=2, frameon=False,
               title="train examples (band: 95 % interval over seeds)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / (2.3 * nrows + 0.7)))
    return fig


def regression(points: pd.DataFrame, fits: dict):
    """Observed vs fitted accuracy for the linear model, in- and out-of-distribution, one
    point per (seed, mix, epoch)."""
    fig, axes = plt.subplots(1, len(fits), figsize=(WIDTH, 3.3), squeeze=False,
                             layout="constrained")
    for ax, (name, res), target in zip(axes[0], fits.items(), ["test_accuracy",
                                                               "ood_accuracy"]):
        observed = 100 * points.loc[res.fittedvalues.index, target]
        fitted = 100 * res.fittedvalues
        sc = ax.scatter(fitted, observed, c=100 * points.loc[res.fittedvalues.index,
                                                              "fitted_unknown_share"],
                        cmap="cividis_r", vmin=0, vmax=100, s=14)
        lo, hi = min(fitted.min(), observed.min()), max(fitted.max(), observed.max())
        ax.plot([lo, hi], [lo, hi], ls="--", c=OKABE_ITO["grey"], lw=1,
                label="observed = predicted")
        r_squared = "–" if np.isnan(res.rsquared) else f"{res.rsquared:.2f}"
        ax.set_title(f"{name}, R² = {r_squared}")
        ax.set(xlabel="predicted accuracy (%)", ylabel="observed accuracy (%)")
    axes[0][0].legend(loc="upper left", frameon=False)
    fig.colorbar(sc, ax=axes[0].tolist(), label="Unknown examples fitted (% of |D|)")
    return fig


def _not_run(message: str):
    """A figure that says what this profile did not run (the page keeps its figure)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 1.0))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def category_heatmap(table: pd.DataFrame, paper: pd.DataFrame | None = None):
    """Test accuracy by test category for each category-pure fine-tuning set, one panel per
    checkpoint; with ``paper`` (the paper's Table 2 in the same long shape), the paper's
    panels beside ours on the same colour scale."""
    if table.empty:
        return _not_run("No category-pure sets in this profile (pure_categories is empty)")
    order_rows = [f"D_{c}" for c in [*CATEGORIES, NATURAL]]
    order_cols = ["All", *CATEGORIES]
    panels = [("this run", table)] + ([("the paper (Table 2)", paper)] if paper is not None
                                      else [])
    fig, axes = plt.subplots(len(panels), 2, figsize=(WIDTH, 2.6 * len(panels) + 0.4),
                             sharey=True, squeeze=False, layout="constrained")
    short = {"HighlyKnown": "Highly", "MaybeKnown": "Maybe", "WeaklyKnown": "Weakly",
             "Unknown": "Unknown", "All": "All"}
    for row, (who, data) in zip(axes, panels):
        for ax, checkpoint in zip(row, CHECKPOINT_ORDER):
            pivot = (data[data["checkpoint"] == checkpoint]
                     .pivot_table(index="train_set", columns="test_category",
                                  values="accuracy")
                     .reindex(index=[r for r in order_rows if r in set(data["train_set"])],
                              columns=[c for c in order_cols
                                       if c in set(data["test_category"])]))
            sns.heatmap(100 * pivot, annot=True, fmt=".0f", cmap="Blues", vmin=0, vmax=100,
                        cbar=False, ax=ax, annot_kws={"fontsize": SMALLEST_FONT},
                        linewidths=0.5, linecolor="white")
            ax.set_xticks(np.arange(pivot.shape[1]) + 0.5,
                          [short[c] for c in pivot.columns], rotation=0)
            ax.set(title=f"{who}, {checkpoint}", xlabel="test questions' category",
                   ylabel="fine-tuned on" if ax is row[0] else "")
    return fig


MITIGATION_KINDS = {"mix": ("plain D", OKABE_ITO["grey"]),
                    "filtered": ("Unknown filtered out (D_Known)", OKABE_ITO["blue"]),
                    "idk": ("Unknown relabelled \"I don't know\" (D_IDK)", OKABE_ITO["orange"])}


def mitigations(summary: pd.DataFrame):
    """Plain vs filtered vs IDK-relabelled sets: accuracy, answer rate and accuracy on
    answered questions, means over seeds with 95 % intervals. ``summary``:
    :func:`knowshift.study.mitigations.summary`."""
    if summary.empty:
        return _not_run("No mitigation sets in this profile (mitigation_shares is empty)")
    metrics = {"accuracy": "accuracy", "answer_rate": "answer rate",
               "accuracy_answered": "accuracy\non answered"}
    sets = [s for s in ("test", "ood") if s in set(summary["set"])]
    fig, axes = plt.subplots(len(sets), 2, figsize=(WIDTH, 2.4 * len(sets) + 0.8), sharey=True,
                             squeeze=False)
    width = 0.8 / len(MITIGATION_KINDS)
    for row, set_name in zip(axes, sets):
        for ax, checkpoint in zip(row, CHECKPOINT_ORDER):
            for k, (kind, (label, colour)) in enumerate(MITIGATION_KINDS.items()):
                t = summary[(summary["set"] == set_name) & (summary["checkpoint"] == checkpoint)
                            & (summary["kind"] == kind)].set_index("metric").reindex(
                                list(metrics))
                x = np.arange(len(metrics)) + (k - 1) * width
                err = 100 * np.vstack([t["value"] - t["low"], t["high"] - t["value"]])
                ax.bar(x, 100 * t["value"], width, label=label, color=colour,
                       yerr=None if np.isnan(err).all() else np.nan_to_num(err), capsize=2)
            ax.set_xticks(np.arange(len(metrics)), list(metrics.values()))
            ax.set_title(f"{checkpoint}, {'in-distribution' if set_name == 'test' else 'OOD'}"
                         " test")
    for row in axes:
        row[0].set_ylabel("%")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper left", ncol=2,
               frameon=False, title="fine-tuning set (bars: 95 % interval over seeds)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / (2.4 * len(sets) + 0.8)))
    return fig


def audit_mix(table: pd.DataFrame, by: str | None = None):
    """An audited set's SliCK category mix: one bar overall, or one bar per value of ``by``."""
    df = table.assign(group=table[by].astype(str) if by else "all examples")
    order = sorted(df["group"].unique())
    fig, ax = plt.subplots(figsize=(WIDTH, 0.35 * len(order) + 1.2))
    _stacked_shares(df.assign(category=df["category"].astype(str)), "group", order, ax)
    ax.set(xlabel="share of examples", ylabel=by or "")
    _category_legend(ax)
    fig.tight_layout()
    return fig

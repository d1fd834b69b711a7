"""The audit's projection: what fitting an audited set is expected to do to test accuracy,
from the paper's linear model (eq. 1) fitted on a knowshift run (with its confidence interval)
or the paper's own coefficients (Table 1, which reports none), and what to do about it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.errors import ParameterError
from ..core.layout import RunFolder
from ..core.params import shown_value
from ..study import regression

# The paper's linear model (Table 1, in-distribution), in accuracy points.
PAPER_FIT = {"b0": 36.9, "b_kn": 7.3, "b_unk": -8.3, "r_squared": 0.86,
             "b_unk_ci": None, "b_kn_ci": None,
             "source": "Gekhman et al. (2024, arXiv:2405.05904v3), Table 1, in-distribution: "
                       "PaLM 2-S fully fine-tuned on EntityQuestions (no confidence intervals "
                       "reported)"}
MATERIAL_POINTS = 1.0      # an expected effect smaller than this is not worth acting on
MIN_KNOWN_TO_FILTER = 0.5  # filter only if at least this share of the data is Known


def study_fit(study: str | Path | None) -> dict:
    """The linear model to predict with: refitted from a knowshift run folder (its
    regression ``points``, with 95 % CIs), or the paper's Table 1 for ``paper``/None."""
    if study in (None, "paper"):
        return dict(PAPER_FIT)
    run = RunFolder(study)
    points_path = run.path("points")
    if not points_path.is_file():
        raise ParameterError(f"{study} is not a finished knowshift run (no {points_path}); "
                             "pass a run folder or 'paper'")
    res = regression.fit(pd.read_parquet(points_path))
    ci = res.conf_int() * 100
    model = shown_value("model", run.stamp_record("slick").get("params", {}).get("model", "?"))
    return {"b0": 100 * res.params["Intercept"], "b_kn": 100 * res.params["known_share"],
            "b_unk": 100 * res.params["unknown_share"], "r_squared": float(res.rsquared),
            "b_kn_ci": ci.loc["known_share"].tolist(), "b_unk_ci": ci.loc["unknown_share"].tolist(),
            "source": f"knowshift run {Path(study).resolve().name!r} (model {model!r}, "
                      f"{int(res.nobs)} checkpoints, errors clustered by training run, "
                      "in-distribution test accuracy)"}


def expected_effect(fit: dict, known_share: float, unknown_share: float,
                    unknown_share_ci: tuple[float, float] | None = None) -> dict:
    """Test accuracy (points) the model predicts once the whole set is fitted, and the part
    owed to the Unknown examples: b_unk x N_unk/|D|, with a 95 % interval when b_unk or the
    share has one (a sampled audit). With both, the interval spans every product of a b_unk
    and a share within their intervals: conservative, as two 95 % intervals are combined."""
    effect = fit["b_unk"] * unknown_share
    b = fit["b_unk_ci"] or ([fit["b_unk"]] if unknown_share_ci is not None else None)
    shares = unknown_share_ci or [unknown_share]
    ci = None if b is None else [min(x * s for x in b for s in shares),
                                 max(x * s for x in b for s in shares)]
    return {"known_share": known_share, "unknown_share": unknown_share,
            "unknown_share_ci": list(unknown_share_ci) if unknown_share_ci else None,
            "predicted_accuracy": fit["b0"] + fit["b_kn"] * known_share + effect,
            "unknown_effect": effect, "unknown_effect_ci": ci, "fit": fit}


def recommend(effect: dict, judged_share: float = 1.0) -> dict:
    """Filter, relabel as IDK, or stop early, from the numbers: act on the Unknown examples only
    if their expected effect is harmful (CI below zero when there is one) and at least
    :data:`MATERIAL_POINTS`; filter if at least :data:`MIN_KNOWN_TO_FILTER` of the data would
    remain, otherwise relabel them "I don't know". Else, early stopping is enough. The shares
    are of the judged examples, ``judged_share`` of the file (the rest is never changed)."""
    e, ci = effect["unknown_effect"], effect["unknown_effect_ci"]
    harmful = (ci[1] < 0) if ci is not None else e < 0
    material = -e >= MATERIAL_POINTS
    share = (f"{effect['unknown_share']:.0%} of the examples are Unknown" if judged_share >= 1
             else f"{effect['unknown_share']:.0%} of the judged examples ({judged_share:.0%} "
                  "of the file; the rest is neither judged nor changed) are Unknown")
    data = "the data" if judged_share >= 1 else "the judged examples"
    span = f" (95 % CI {ci[0]:.1f} to {ci[1]:.1f})" if ci is not None else ""
    if harmful and material:
        if effect["known_share"] >= MIN_KNOWN_TO_FILTER:
            return {"action": "filter", "reason": (
                f"{share}; fitting them is expected to cost {-e:.1f} accuracy points{span}. "
                f"Filtering them keeps {effect['known_share']:.0%} of {data} (use filtered "
                "file).")}
        return {"action": "relabel as IDK", "reason": (
            f"{share}; fitting them is expected to cost {-e:.1f} accuracy points{span}, and "
            f"filtering would keep only {effect['known_share']:.0%} of {data}. Relabel them "
            "\"I don't know\" instead (use the IDK file).")}
    why = ("no Unknown examples" if effect["unknown_share"] == 0 else
           f"the expected cost of fitting them is {-e:.1f} points{span}, "
           + ("not clearly harmful" if not harmful else "below "
              f"{MATERIAL_POINTS:g} point"))
    return {"action": "stop early", "reason": (
        f"{share}; {why}. Train as is, with early stopping on a development set: Unknown "
        "examples are fitted late, so stopping at the best dev epoch avoids most of their "
        "harm.")}

"""EARLY_STOP/CONVERGENCE selection, the analysis stages, the regression and IDK scoring, on small
hand-made tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from knowshift.core.scoring import is_abstention, rates, score
from knowshift.study.categories import accuracy_by_category
from knowshift.study.checkpoints import (convergence_epoch, early_stop_epoch, per_epoch,
                                         plateau_epochs, select)
from knowshift.study.dynamics import epochs_to_fit, fit_curves, fitted_at_end
from knowshift.study.mitigations import compare
from knowshift.study.regression import coefficient_table, fit


def test_early_stop_is_the_best_dev_epoch():
    dev = pd.Series([0.20, 0.31, 0.35, 0.33, 0.35, 0.30], index=range(1, 7))
    assert early_stop_epoch(dev) == 3                      # earliest of the tied best


def test_convergence_is_the_last_epoch_and_its_plateau_is_counted():
    train = pd.Series([0.40, 0.70, 0.90, 0.99, 1.0, 1.0], index=range(1, 7))
    assert convergence_epoch(train) == 6
    assert plateau_epochs(train) == 3                      # within 2.5 points of the best
    assert plateau_epochs(train, tolerance=0.0) == 2
    assert plateau_epochs(pd.Series([0.1, 0.2, 0.3], index=[1, 2, 3])) == 1   # still rising
    assert plateau_epochs(pd.Series([1.0, 1.0, 0.8], index=[1, 2, 3])) == 0   # fell off


def _results(variant, epoch, train_known, train_unknown, dev, test):
    rows = []
    for known, fitted in ((True, train_known), (False, train_unknown)):
        rows += [{"set": "train", "known": known, "correct": bool(c)} for c in fitted]
    rows += [{"set": "dev", "known": True, "correct": bool(c)} for c in dev]
    rows += [{"set": "test", "known": True, "correct": bool(c)} for c in test]
    return pd.DataFrame(rows).assign(seed=0, variant=variant, epoch=epoch, abstained=False)


def test_per_epoch_metrics_and_selection():
    results = pd.concat([
        _results("v", 1, [1, 0], [0, 0], [1, 0], [1, 1]),
        _results("v", 2, [1, 1], [1, 0], [1, 1], [1, 0]),
        _results("v", 3, [1, 1], [1, 1], [0, 1], [0, 0]),
    ])
    m = per_epoch(results)
    assert m["train_accuracy"].tolist() == [0.25, 0.75, 1.0]
    assert m["fitted_known_share"].tolist() == [0.25, 0.5, 0.5]
    assert m["fitted_unknown_share"].tolist() == [0.0, 0.25, 0.5]
    chosen = select(m).set_index("checkpoint")
    assert chosen.loc["EARLY_STOP", "epoch"] == 2 and chosen.loc["CONVERGENCE", "epoch"] == 3
    assert chosen.loc["CONVERGENCE", "test_accuracy"] == 0.0
    assert chosen.loc["CONVERGENCE", "plateau_epochs"] == 1
    assert not chosen.loc["CONVERGENCE", "converged"]          # train accuracy still rising


def test_regression_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    n = 200
    known, unknown = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    acc = 0.30 + 0.10 * known - 0.20 * unknown + rng.normal(0, 0.01, n)
    points = pd.DataFrame({"test_accuracy": acc, "fitted_known_share": known,
                           "fitted_unknown_share": unknown})
    res = fit(points)
    assert res.params["Intercept"] == pytest.approx(0.30, abs=0.01)
    assert res.params["known_share"] == pytest.approx(0.10, abs=0.01)
    assert res.params["unknown_share"] == pytest.approx(-0.20, abs=0.01)
    assert res.rsquared > 0.95
    table = coefficient_table({"in-distribution": res}).set_index("term")
    assert table.loc["unknown_share", "ci_low"] < -0.20 < table.loc["unknown_share", "ci_high"]
    assert table.loc["unknown_share", "ci_high"] < 0


def test_idk_answers_are_abstentions_not_errors():
    assert is_abstention("I don't know") and is_abstention("i don't know")
    assert is_abstention("I don't know.") and not is_abstention("Nairobi")
    scored = score(["Nairobi", "I don't know", "Lima", "I don't know"],
                   [["Nairobi"], ["Oslo"], ["Quito"], ["I don't know"]])
    assert scored["abstained"].tolist() == [False, True, False, True]
    stats = rates(scored.iloc[:3])
    assert stats["accuracy"] == pytest.approx(1 / 3)         # abstention counts as not correct
    assert stats["answer_rate"] == pytest.approx(2 / 3)
    assert stats["accuracy_answered"] == pytest.approx(1 / 2)


def _train_rows(variant, share, epoch, known_correct, unknown_correct):
    rows = [{"known": True, "correct": bool(c)} for c in known_correct]
    rows += [{"known": False, "correct": bool(c)} for c in unknown_correct]
    return pd.DataFrame(rows).assign(seed=0, variant=variant, unknown_share=share,
                                     epoch=epoch, set="train", kind="mix")


def test_fit_curves_and_epochs_to_fit():
    results = pd.concat([
        _train_rows("mix_50%", 0.5, 1, [1, 1, 0, 1], [0, 0, 0, 0]),
        _train_rows("mix_50%", 0.5, 2, [1, 1, 1, 1], [1, 0, 0, 0]),
        _train_rows("mix_50%", 0.5, 3, [1, 1, 1, 1], [1, 1, 1, 1]),
        _train_rows("mix_0%", 0.0, 1, [1, 1, 1, 1], []),
        # rows of other sets and kinds are not part of the curves
        _train_rows("pure_Unknown", 1.0, 1, [], [1, 1]).assign(kind="pure"),
        _train_rows("mix_50%", 0.5, 1, [0, 0], []).assign(set="test"),
    ])
    curves = fit_curves(results).set_index(["variant", "epoch", "subset"])["train_accuracy"]
    assert curves["mix_50%", 1, "Known"] == 0.75 and curves["mix_50%", 1, "Unknown"] == 0.0
    assert curves["mix_50%", 2, "Unknown"] == 0.25 and curves["mix_0%", 1, "Known"] == 1.0
    assert "pure_Unknown" not in curves.index.get_level_values("variant")
    first = epochs_to_fit(fit_curves(results), threshold=0.9).set_index("variant")
    assert first.loc["mix_50%", "Known"] == 2 and first.loc["mix_50%", "Unknown"] == 3
    assert first.loc["mix_0%", "Known"] == 1 and np.isnan(first.loc["mix_0%", "Unknown"])


def test_whether_each_mix_was_fitted_at_its_last_epoch():
    """The 50 % mix ends fitted; the 100 % mix ends with half its Unknown examples (the last
    epoch of each run counts, whatever the other runs' lengths)."""
    results = pd.concat([
        _train_rows("mix_50%", 0.5, 1, [1, 0], [0, 0]),
        _train_rows("mix_50%", 0.5, 2, [1, 1], [1, 1]),
        _train_rows("mix_100%", 1.0, 1, [], [0, 0, 0, 0]),
        _train_rows("mix_100%", 1.0, 2, [], [1, 1, 0, 0]),
    ])
    end = fitted_at_end(fit_curves(results), threshold=0.9).set_index(
        ["unknown_share", "subset"])
    assert end.loc[(0.5, "Known"), "fitted"] and end.loc[(0.5, "Unknown"), "fitted"]
    assert not end.loc[(1.0, "Unknown"), "fitted"]
    assert end.loc[(1.0, "Unknown"), "train_accuracy"] == 0.5
    assert set(end["epoch"]) == {2}
    # a run too short to fit anything (two LoRA epochs) still has both columns, all NaN
    none = epochs_to_fit(fit_curves(results), threshold=1.1)
    assert none[["Known", "Unknown"]].isna().all().all() and len(none) == 2


def _test_rows(variant, epoch, by_category, set_name="test", abstained=None):
    rows = [{"slick_category": c, "correct": bool(x)} for c, xs in by_category.items()
            for x in xs]
    df = pd.DataFrame(rows).assign(variant=variant, epoch=epoch, set=set_name)
    df["abstained"] = False if abstained is None else abstained
    return df


def test_accuracy_by_category_reads_each_checkpoint_epoch():
    results = pd.concat([
        _test_rows("pure_MaybeKnown", 1, {"HighlyKnown": [1, 1], "Unknown": [0, 0]}),
        _test_rows("pure_MaybeKnown", 2, {"HighlyKnown": [1, 0], "Unknown": [0, 1]}),
        _test_rows("mix_50%", 1, {"HighlyKnown": [0, 0], "Unknown": [0, 0]}),
    ])
    checkpoints = pd.DataFrame([
        {"variant": "pure_MaybeKnown", "kind": "pure", "category": "MaybeKnown",
         "checkpoint": "EARLY_STOP", "epoch": 1},
        {"variant": "pure_MaybeKnown", "kind": "pure", "category": "MaybeKnown",
         "checkpoint": "CONVERGENCE", "epoch": 2},
        {"variant": "mix_50%", "kind": "mix", "category": None, "checkpoint": "EARLY_STOP",
         "epoch": 1}])
    table = accuracy_by_category(results, checkpoints).set_index(
        ["train_set", "checkpoint", "test_category"])
    assert set(table.index.get_level_values("train_set")) == {"D_MaybeKnown"}
    assert table.loc[("D_MaybeKnown", "EARLY_STOP", "HighlyKnown"), "accuracy"] == 1.0
    assert table.loc[("D_MaybeKnown", "EARLY_STOP", "All"), "accuracy"] == 0.5
    assert table.loc[("D_MaybeKnown", "CONVERGENCE", "Unknown"), "accuracy"] == 0.5
    assert table.loc[("D_MaybeKnown", "CONVERGENCE", "All"), "n"] == 4


def test_mitigations_compare_plain_filtered_and_idk_at_the_same_share():
    results = pd.concat([
        _test_rows("mix_50%", 2, {"x": [1, 0, 0, 0]}),
        _test_rows("filtered_50%", 1, {"x": [1, 1, 0, 0]}),
        _test_rows("idk_50%", 3, {"x": [1, 0, 0, 0]}, abstained=[False, True, True, False]),
        _test_rows("idk_50%", 3, {"x": [0, 0]}, set_name="ood", abstained=[True, True]),
        _test_rows("mix_25%", 1, {"x": [1, 1, 1, 1]}),
    ])
    cp = pd.DataFrame([
        {"variant": v, "kind": k, "unknown_share": s, "checkpoint": "EARLY_STOP", "epoch": e}
        for v, k, s, e in [("mix_50%", "mix", 0.5, 2), ("filtered_50%", "filtered", 0.5, 1),
                           ("idk_50%", "idk", 0.5, 3), ("mix_25%", "mix", 0.25, 1)]])
    table = compare(results, cp).set_index(["kind", "set"])
    assert "mix_25%" not in set(table["variant"])            # no mitigation at 25 %
    assert table.loc[("mix", "test"), "accuracy"] == 0.25
    assert table.loc[("filtered", "test"), "accuracy"] == 0.5
    idk = table.loc[("idk", "test")]
    assert (idk["accuracy"], idk["answer_rate"], idk["accuracy_answered"]) == (0.25, 0.5, 0.5)
    assert table.loc[("idk", "ood"), "answer_rate"] == 0.0
    assert np.isnan(table.loc[("idk", "ood"), "accuracy_answered"])

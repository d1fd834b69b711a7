"""EARLY_STOP/CONVERGENCE selection, the regression and IDK scoring, on data with known answers."""

import numpy as np
import pandas as pd
import pytest

from knowshift.checkpoints import convergence_epoch, early_stop_epoch, per_epoch, select
from knowshift.evaluation import is_abstention, score, summarize
from knowshift.regression import coefficient_table, fit


def test_early_stop_is_the_best_dev_epoch():
    dev = pd.Series([0.20, 0.31, 0.35, 0.33, 0.35, 0.30], index=range(1, 7))
    assert early_stop_epoch(dev) == 3                      # earliest of the tied best


def test_convergence_is_where_train_accuracy_stops_rising():
    train = pd.Series([0.40, 0.70, 0.90, 0.995, 1.0, 1.0], index=range(1, 7))
    assert convergence_epoch(train) == 4                   # within 1 point of the plateau
    assert convergence_epoch(train, tolerance=0.0) == 5
    assert convergence_epoch(pd.Series([0.1, 0.2, 0.3], index=[1, 2, 3])) == 3   # still rising


def _results(variant, epoch, train_known, train_unknown, dev, test):
    rows = []
    for known, fitted in ((True, train_known), (False, train_unknown)):
        rows += [{"set": "train", "known": known, "correct": bool(c)} for c in fitted]
    rows += [{"set": "dev", "known": True, "correct": bool(c)} for c in dev]
    rows += [{"set": "test", "known": True, "correct": bool(c)} for c in test]
    return pd.DataFrame(rows).assign(variant=variant, epoch=epoch, abstained=False)


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
    stats = summarize(scored.iloc[:3])
    assert stats["accuracy"] == pytest.approx(1 / 3)         # abstention counts as not correct
    assert stats["answer_rate"] == pytest.approx(2 / 3)
    assert stats["accuracy_answered"] == pytest.approx(1 / 2)

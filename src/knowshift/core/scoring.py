"""Scoring closed-book answers: exact match after normalisation, and "I don't know" as an
abstention, not an error. We report accuracy on all questions, the answer rate, and accuracy on
the answered ones. Pure pandas, so analysis stages can use it without importing torch."""

from __future__ import annotations

import pandas as pd

from .answers import is_correct, normalize
from .schema import IDK_ANSWER

_IDK = normalize(IDK_ANSWER)


def is_abstention(prediction: str) -> bool:
    return normalize(prediction) == _IDK


def score(predictions: list[str], answers: list[list[str]]) -> pd.DataFrame:
    """Per-question ``correct`` and ``abstained`` flags."""
    return pd.DataFrame({"prediction": predictions,
                         "correct": [is_correct(p, a) for p, a in zip(predictions, answers)],
                         "abstained": [is_abstention(p) for p in predictions]})


def rates(scored: pd.DataFrame) -> pd.Series:
    """accuracy (abstentions count as wrong), answer rate, accuracy on answered questions."""
    answered = ~scored["abstained"]
    return pd.Series({"accuracy": scored["correct"].mean(), "answer_rate": answered.mean(),
                      "accuracy_answered": scored.loc[answered, "correct"].mean()
                      if answered.any() else float("nan"), "n": len(scored)})

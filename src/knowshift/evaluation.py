"""Closed-book evaluation of a (fine-tuned) model: zero-shot ``Q: ...\\nA:`` prompts, greedy,
exact match after normalisation. "I don't know" counts as an abstention, not an error: we report
accuracy on all questions, the answer rate, and accuracy on the answered ones."""

from __future__ import annotations

import pandas as pd

from .answers import is_correct, normalize
from .finetune_sets import IDK_ANSWER
from .generation import complete
from .slick import format_question

_IDK = normalize(IDK_ANSWER)


def is_abstention(prediction: str) -> bool:
    return normalize(prediction) == _IDK


def predict(model, tok, questions: list[str], batch_size: int = 64,
            max_new_tokens: int = 16) -> list[str]:
    was_training = model.training
    model.eval()
    answers = complete(model, tok, "", [format_question(q) for q in questions],
                       batch_size=batch_size, max_new_tokens=max_new_tokens)
    model.train(was_training)
    return [a[0] for a in answers]


def score(predictions: list[str], answers: list[list[str]]) -> pd.DataFrame:
    """Per-question ``correct`` and ``abstained`` flags."""
    return pd.DataFrame({"prediction": predictions,
                         "correct": [is_correct(p, a) for p, a in zip(predictions, answers)],
                         "abstained": [is_abstention(p) for p in predictions]})


def summarize(scored: pd.DataFrame) -> pd.Series:
    """accuracy (abstentions count as wrong), answer rate, accuracy on answered questions."""
    answered = ~scored["abstained"]
    return pd.Series({"accuracy": scored["correct"].mean(), "answer_rate": answered.mean(),
                      "accuracy_answered": scored.loc[answered, "correct"].mean()
                      if answered.any() else float("nan"), "n": len(scored)})

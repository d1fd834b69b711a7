"""Closed-book evaluation of a (fine-tuned) model: zero-shot prompts in the study's format,
greedy decoding. Scoring lives in :mod:`knowshift.core.scoring` (no torch)."""

from __future__ import annotations

from ..core.schema import QA_TEMPLATE, format_question
from .generation import complete


def predict(model, tok, questions: list[str], batch_size: int,
            max_new_tokens: int, template: str = QA_TEMPLATE) -> list[str]:
    """One greedy answer per question; the model is put back in its training mode after."""
    was_training = model.training
    model.eval()
    answers = complete(model, tok, "", [format_question(q, template) for q in questions],
                       batch_size=batch_size, max_new_tokens=max_new_tokens)
    model.train(was_training)
    return [a[0] for a in answers]

"""Closed-book evaluation of a (fine-tuned) model: zero-shot prompts in the study's format,
greedy decoding. Scoring lives in :mod:`knowshift.core.scoring` (no torch)."""

from __future__ import annotations

from ..core.schema import QA_TEMPLATE, format_question
from .generation import complete_many


def prompt_groups(questions: list[str], max_new_tokens: int, template: str = QA_TEMPLATE
                  ) -> list[tuple[str, list[str], list[int], int]]:
    """What :func:`predict` asks of :func:`~knowshift.engine.generation.complete_many` (and
    ``knowshift plan`` counts): one group of zero-shot prompts, one budget each."""
    prompts = [format_question(q, template) for q in questions]
    return [("", prompts, [max_new_tokens] * len(prompts), 0)]


def predict(model, tok, questions: list[str], batch_size: int,
            max_new_tokens: int, template: str = QA_TEMPLATE) -> list[str]:
    """One greedy answer per question; the model is put back in its training mode after."""
    was_training = model.training
    model.eval()
    [answers] = complete_many(model, tok, prompt_groups(questions, max_new_tokens, template),
                              temperature=0.0, num_samples=1, top_k=0, batch_size=batch_size)
    model.train(was_training)
    return [a[0] for a in answers]

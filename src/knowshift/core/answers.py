"""Answer normalisation and exact-match scoring, as in the paper (EM after normalisation):
case, accents, punctuation, articles and whitespace do not count."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”–—"})


def normalize(text: str) -> str:
    """Lower-case, strip accents, drop punctuation and English articles, squeeze spaces."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def matched(prediction: str, answers: Iterable[str]) -> str | None:
    """The accepted answer (aliases included) the prediction matches exactly once both are
    normalised, or None; an empty prediction matches nothing."""
    pred = normalize(prediction)
    return next((a for a in answers if pred and pred == normalize(a)), None)


def is_correct(prediction: str, answers: Iterable[str]) -> bool:
    """Exact match of the normalised prediction against any accepted answer."""
    return matched(prediction, answers) is not None

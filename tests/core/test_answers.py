import pytest

from knowshift.core.answers import is_correct, normalize
from knowshift.engine.generation import first_line


@pytest.mark.parametrize("raw, expected", [
    ("Nairobi", "nairobi"),
    ("  The United  States. ", "united states"),
    ("São Paulo", "sao paulo"),
    ("Côte d'Ivoire", "cote d ivoire"),
    ("an apple, a day", "apple day"),
    ("Theodore", "theodore"),          # articles only as whole words
    ("Washington, D.C.", "washington d c"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_exact_match_after_normalisation_against_any_alias():
    answers = ["United States", "USA", "U.S."]
    assert is_correct("the united states.", answers)
    assert is_correct("usa", answers)
    assert is_correct("U.S", answers)
    assert not is_correct("United States of America", answers)   # exact match, not containment
    assert not is_correct("Mexico", answers)
    assert not is_correct("", answers)
    assert not is_correct("the", ["The"])                         # nothing left is not a match


def test_first_line_is_the_answer():
    assert first_line(" Nairobi\n\nQ: What is") == "Nairobi"
    assert first_line("") == ""

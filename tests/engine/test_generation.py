import pytest

from knowshift.engine.generation import complete, complete_many, complete_naive

pytestmark = pytest.mark.slow     # every test here loads the model, runs a profile or drives Chromium

PREFIX = "".join(f"Q: What is the capital of {c}?\nA: {a}\n\n" for c, a in
                 [("Germany", "Berlin"), ("Japan", "Tokyo"), ("Italy", "Rome"),
                  ("Canada", "Ottawa")])
QUESTIONS = [f"Q: What is the capital of {c}?\nA:" for c in
             ["France", "Kenya", "Mongolia", "Burkina Faso", "Australia", "Peru"]]


def test_cached_batched_greedy_equals_one_call_per_question(default_model):
    net, tok = default_model
    fast = complete(net, tok, PREFIX, QUESTIONS, batch_size=4)
    naive = complete_naive(net, tok, PREFIX, QUESTIONS)
    assert [a[0] for a in fast] == naive
    assert fast[0] == ["Paris"] and fast[1] == ["Nairobi"]      # the default model's answers


def test_sampling_is_seeded(default_model):
    net, tok = default_model
    a = complete(net, tok, PREFIX, QUESTIONS[:3], temperature=0.5, num_samples=4, seed=7)
    b = complete(net, tok, PREFIX, QUESTIONS[:3], temperature=0.5, num_samples=4, seed=7)
    assert a == b and all(len(x) == 4 for x in a)
    c = complete(net, tok, PREFIX, QUESTIONS[:3], temperature=1.5, num_samples=4, seed=8)
    assert c != a


def test_answer_budget_stops_long_continuations(default_model):
    net, tok = default_model
    full = [a[0] for a in complete(net, tok, PREFIX, QUESTIONS[1:4])]
    short = [a[0] for a in complete(net, tok, PREFIX, QUESTIONS[1:4], max_new_tokens=[1, 1, 1])]
    assert all(f.startswith(s) and s for f, s in zip(full, short))
    assert any(len(s) < len(f) for f, s in zip(full, short))        # multi-token answers cut


OTHER = "".join(f"Q: Which continent is {c} in?\nA: {a}\n\n" for c, a in
                [("Kenya", "Africa"), ("Peru", "South America"), ("Spain", "Europe")])
CONTINENTS = [f"Q: Which continent is {c} in?\nA:" for c in ["Japan", "Chile", "Egypt"]]


def test_prompts_with_different_prefixes_share_batches_without_changing_answers(default_model):
    """Rows of several exemplar prefixes (and none) in one batch, their caches side by side,
    answer as one plain ``generate`` call per prompt does."""
    net, tok = default_model
    groups = [(PREFIX, QUESTIONS[:3], [12] * 3, 0), (OTHER, CONTINENTS, [12] * 3, 1),
              ("", QUESTIONS[3:], [12] * 3, 2)]
    together = complete_many(net, tok, groups, batch_size=16)
    assert [[a[0] for a in g] for g in together] == [
        complete_naive(net, tok, prefix, suffixes) for prefix, suffixes, _, _ in groups]


def test_a_groups_samples_do_not_depend_on_its_batch_mates(default_model):
    net, tok = default_model
    alone = complete_many(net, tok, [(OTHER, CONTINENTS, [8] * 3, 5)], temperature=1.0,
                          num_samples=3, batch_size=16)
    shared = complete_many(net, tok, [(PREFIX, QUESTIONS, [8] * 6, 4),
                                      (OTHER, CONTINENTS, [8] * 3, 5)], temperature=1.0,
                           num_samples=3, batch_size=16)
    assert shared[1] == alone[0] and all(len(s) == 3 for s in alone[0])

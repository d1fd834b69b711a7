from knowshift.generation import complete, complete_naive

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
    assert fast[0] == ["Paris"] and fast[1] == ["Nairobi"]      # measured in shared/


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

"""Generation batches sized for a GPU: a batch's cache is assembled per prefix, not per row, and
the next token's logits are float32 whatever the weights' dtype. On the tiny random Llama of
``conftest`` (no download, seconds)."""

import numpy as np
import torch
from scipy import stats
from torch.utils._python_dispatch import TorchDispatchMode

from knowshift.core.schema import format_exemplars, format_question
from knowshift.engine import work
from knowshift.engine.generation import (_batch_cache, _prefix_states, complete_many, sample,
                                         sample_keys, uniforms)


class Ops(TorchDispatchMode):
    """Counts the tensor operations run inside it, and the dtypes of vocabulary-wide outputs."""

    def __init__(self, vocab: int = 0):
        super().__init__()
        self.count, self.vocab, self.wide = 0, vocab, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.count += 1
        if (isinstance(out, torch.Tensor) and self.vocab and out.is_floating_point()
                and out.shape[-1:] == (self.vocab,)):
            self.wide.append(out.dtype)
        return out


PREFIXES = [format_exemplars([f"What is the capital of {c}?"], [a])
            for c, a in (("Germany", "Berlin"), ("Japan", "Tokyo"), ("Italy", "Rome"))]


def test_assembling_a_batch_cache_costs_the_same_operations_at_64_and_1024_rows(
        sentencepiece_model):
    net, tok = sentencepiece_model
    states = [_prefix_states(net, tok(p)["input_ids"]) for p in PREFIXES]
    width = max(s[0][0].shape[2] for s in states)
    counts = {}
    for rows in (64, 1024):
        picked = [states[i % len(states)] for i in range(rows)]
        with Ops() as ops:
            cache = _batch_cache(net, picked, width, width + 8)
        counts[rows] = ops.count
        keys = cache.layers[0].keys                         # a view of the filled positions
        assert keys.shape[:3] == (rows, 2, width)
        assert cache.layers[0].buffers[0].shape[2] == width + 8
        for i in (0, 1, 2, rows - 1):                       # each row holds its own prefix
            n = states[i % 3][0][0].shape[2]
            assert torch.equal(keys[i, :, width - n:], states[i % 3][0][0][0])
            assert not keys[i, :, :width - n].any()
    assert counts[64] == counts[1024]


def test_answers_and_work_do_not_depend_on_when_finished_rows_leave_the_batch(
        sentencepiece_model, monkeypatch):
    """Finished rows stay in the batch, their tokens ignored, until enough have finished: the
    answers and the work counted are the same when they leave at once (as they used to) and
    when they never leave, greedy and sampled, budgets apart so that rows stop at different
    steps."""
    from knowshift.engine import generation
    net, tok = sentencepiece_model
    prompts = [format_question(f"What is the capital of country {i}?") for i in range(9)]
    groups = [(PREFIXES[i % 3], prompts[i::3], [1 + (i + 2 * j) % 6 for j in range(3)], i)
              for i in range(3)] + [("", prompts[:2], [3, 5], 7)]      # one without a prefix
    runs = {}
    for at in (0.0, 0.25, 2.0):
        monkeypatch.setattr(generation, "COMPACT_AT", at)
        for temperature, n in ((0.0, 1), (1.0, 3)):
            with work.recording() as done:
                answers = complete_many(net, tok, groups, temperature=temperature,
                                        num_samples=n, batch_size=12)
            runs.setdefault((temperature, n), []).append((answers, done["other"].as_dict()))
    for results in runs.values():
        assert all(r == results[0] for r in results[1:])


def test_next_token_logits_are_float32_with_bf16_weights(sentencepiece_model):
    net, tok = sentencepiece_model
    prompts = [format_question(q) for q in ("What is the capital of Kenya?",
                                            "Which country is Lyon in?")]
    half = type(net)(net.config).to(torch.bfloat16)
    half.load_state_dict(net.state_dict())
    half.eval()
    for model in (net, half):
        with Ops(vocab=net.config.vocab_size) as ops:
            complete_many(model, tok, [(PREFIXES[0], prompts, [3, 3], 0)], temperature=1.0,
                          num_samples=2)
        assert ops.wide and set(ops.wide) == {torch.float32}


def test_the_work_recorded_is_what_the_batches_did(sentencepiece_model):
    """Rows, prompts, batches and decode steps as the generation counts them: a batch holds up
    to ``batch_size`` rows (prompts x samples), and every decode step adds one token per row."""
    net, tok = sentencepiece_model
    prompts = [format_question(f"What is the capital of country {i}?") for i in range(10)]
    with work.recording() as done, work.phase("sampled"):
        answers = complete_many(net, tok, [(PREFIXES[1], prompts, [4] * 10, 0)],
                                temperature=1.0, num_samples=4, batch_size=16)
    t = done["sampled"]
    assert (t.prompts, t.rows, t.batches) == (10, 40, 3)          # 4 + 4 + 2 prompts
    assert t.budget_tokens == 40 * 4 and t.generated_tokens <= t.budget_tokens
    assert t.decode_steps <= 3 * 4 and t.forward_passes == t.decode_steps + 1   # + the prefix
    assert len(answers[0]) == 10 and all(len(a) == 4 for a in answers[0])


def test_samples_depend_on_neither_batch_size_company_nor_the_other_questions(
        sentencepiece_model):
    """A prompt's sampled answers are keyed by its group's seed and its own ids: the same at 4
    rows per batch and at 64, beside another group's rows, and when its group asks fewer
    questions (as SliCK's sampled pass does), so a study cut into other batches or jobs draws
    alike."""
    net, tok = sentencepiece_model
    questions = [format_question(f"What is the capital of country {i}?") for i in range(12)]

    def draw(groups, batch_size):
        return complete_many(net, tok, groups, temperature=1.0, num_samples=4, top_k=20,
                             batch_size=batch_size)

    small = draw([(PREFIXES[0], questions, [5] * 12, 11)], 4)[0]
    large = draw([(PREFIXES[1], questions[:5], [5] * 5, 12),
                  (PREFIXES[0], questions, [5] * 12, 11)], 64)[1]
    fewer = draw([(PREFIXES[0], questions[3:6], [5] * 3, 11)], 64)[0]
    assert small == large and fewer == small[3:6]
    assert len({a for answers in small for a in answers}) > 12       # the draws do spread
    assert draw([(PREFIXES[0], questions, [5] * 12, 12)], 64)[0] != small   # another seed


def test_inverse_cdf_draws_follow_the_softmax_among_the_top_k():
    """The counter-based uniforms are uniform, differ from step to step, and turned into tokens
    they follow the tempered softmax over the k likeliest tokens (20,000 draws)."""
    n = 20_000
    keys = np.concatenate([sample_keys(3, [i, 7], 1) for i in range(n)])
    first, second = uniforms(keys, 0), uniforms(keys, 1)
    assert stats.kstest(first, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.03
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]]).repeat(n, 1)
    drawn = sample(logits, 0.7, 4, torch.from_numpy(first)).numpy()
    counts = np.bincount(drawn, minlength=6)
    assert counts[4:].sum() == 0                                # outside the top 4: never
    expected = torch.softmax(logits[0, :4].double() / 0.7, dim=0).numpy() * n
    assert stats.chisquare(counts[:4], expected).pvalue > 1e-3

"""Every path that feeds a model encodes the same text the same way, whatever the tokenizer:
SliCK's k-shot prompts, evaluation's zero-shot prompts, training sequences and answer budgets
are the ids the tokenizer itself gives the whole text (its BOS included). Two small tokenizers
are committed for this (``tests/data/tokenizers``, built by its ``build.py``): a
SentencePiece-style one that marks every text's start as Llama 2 and Mistral do, and a
byte-level BPE; both add a BOS token, as Llama and Mistral tokenizers do and SmolLM2's does
not."""

import pandas as pd
import pytest
from conftest import DATA
from transformers import AutoTokenizer

from knowshift.core.schema import format_exemplars, format_question, format_target
from knowshift.engine.encoding import leading_specials
from knowshift.engine.generation import complete_many, complete_naive, encode_groups
from knowshift.study import finetune, slick

TOKENIZERS = DATA / "tokenizers"
EXEMPLARS = format_exemplars(["What is the capital of Germany?", "What is the capital of Japan?",
                              "What is the capital of Italy?", "What is the capital of Canada?"],
                             ["Berlin", "Tokyo", "Rome", "Ottawa"])
QUESTIONS = ["What is the capital of France?", "What is the capital of Kenya?",
             "Which country is Nairobi located in?", "What is the capital of Burkina Faso?",
             "Which continent is Peru located on?", "What is the capital of Australia?"]
ANSWERS = [["Paris"], ["Nairobi"], ["Kenya", "Republic of Kenya"], ["Ouagadougou"],
           ["South America"], ["Canberra"]]


@pytest.fixture(scope="module", params=["metaspace", "bos-bytelevel"])
def tok(request):
    return AutoTokenizer.from_pretrained(TOKENIZERS / request.param)


def test_the_committed_tokenizers_show_what_tokenizing_apart_gets_wrong(tok):
    """The cases this module is about are real for these tokenizers: a BOS token, and pieces
    whose ids alone differ from their ids inside the whole text."""
    assert leading_specials(tok) == [tok.bos_token_id]
    apart = tok(EXEMPLARS).input_ids + tok(format_question(QUESTIONS[0]),
                                           add_special_tokens=False).input_ids
    assert apart != tok(EXEMPLARS + format_question(QUESTIONS[0])).input_ids


def test_every_prompt_is_its_whole_text_as_the_tokenizer_encodes_it(tok):
    """SliCK's k-shot group and evaluation's zero-shot group, as the generation code cuts them:
    the shared ids and each prompt's own ids make up the tokenizer's encoding of the whole
    prompt, BOS first."""
    prompts = [format_question(q) for q in QUESTIONS]
    groups = [(EXEMPLARS, prompts), ("", prompts)]
    for (prefix, suffixes), (head, rests) in zip(groups, encode_groups(tok, groups)):
        for suffix, rest in zip(suffixes, rests):
            assert head + rest == tok(prefix + suffix).input_ids
            assert rest                                  # every prompt has ids of its own
        assert head[0] == tok.bos_token_id
    assert len(encode_groups(tok, groups)[0][0]) > 20     # the exemplars' ids are shared


def test_training_reads_the_prompt_evaluation_feeds_and_each_target_inside_its_sequence(tok):
    targets = [a[0] for a in ANSWERS]
    training = finetune.encode(tok, QUESTIONS, targets)
    [(head, rests)] = encode_groups(tok, [("", [format_question(q) for q in QUESTIONS])])
    for (ids, n), q, t, rest in zip(training, QUESTIONS, targets, rests):
        whole = tok(format_question(q) + format_target(t)).input_ids
        prompt = tok(format_question(q)).input_ids
        assert whole[:len(prompt)] == prompt              # the prompt's ids start the sequence
        assert ids == whole and n == len(prompt)
        assert ids[:n] == head + rest                    # what evaluation feeds
        assert ids[n:] == whole[len(prompt):]            # the target as the sequence holds it


def test_answer_budgets_count_each_answers_tokens_after_its_prompt(tok):
    """A right answer's tokens (its longest accepted answer and the closing newline), the
    length ``knowshift plan`` expects; SliCK's budget adds its margin to it."""
    right = slick._answer_tokens(tok, pd.Series(QUESTIONS), pd.Series(ANSWERS))
    for q, answers, n in zip(QUESTIONS, ANSWERS, right):
        prompt = tok(format_question(q)).input_ids
        longest = max(len(tok(format_question(q) + " " + a).input_ids) - len(prompt)
                      for a in answers)
        assert n == longest + 1
    assert slick.BUDGET_MARGIN == 2          # a budget of longest + 3, as SliCK always gave


def test_cached_batched_answers_equal_one_generate_call_per_prompt(sentencepiece_model):
    """With a SentencePiece tokenizer, rows of several prefixes (exemplars, none) side by side
    and their shared ids cached answer as plain ``generate`` on the whole prompt does."""
    net, tok = sentencepiece_model
    prompts = [format_question(q) for q in QUESTIONS]
    groups = [(EXEMPLARS, prompts[:3], [6] * 3, 0), ("", prompts[3:], [6] * 3, 1)]
    together = complete_many(net, tok, groups, batch_size=4)
    assert [[a[0] for a in g] for g in together] == [
        complete_naive(net, tok, prefix, suffixes, max_new_tokens=6)
        for prefix, suffixes, _, _ in groups]
    assert any(a[0] for g in together for a in g)          # something was generated


def test_top_k_sampling_draws_only_among_the_k_likeliest_tokens(sentencepiece_model):
    net, tok = sentencepiece_model
    prompt = [format_question(QUESTIONS[0])]
    greedy = complete_many(net, tok, [("", prompt, [1], 0)])[0][0][0]
    top1 = complete_many(net, tok, [("", prompt, [1], 0)], temperature=2.0, num_samples=8,
                         top_k=1)[0][0]
    free = complete_many(net, tok, [("", prompt, [1], 0)], temperature=2.0, num_samples=8)[0][0]
    assert top1 == [greedy] * 8                           # k = 1 is greedy, whatever T
    assert len(set(free)) > 1                             # without it, T = 2 spreads the draws


def test_the_papers_template_writes_its_examples_and_a_bad_one_is_refused():
    from knowshift.core.errors import ParameterError
    from knowshift.core.params import resolve
    from knowshift.core.schema import PAPER_TEMPLATE, format_question, format_target
    paper = resolve("paper", {})
    assert paper["prompt_template"] == PAPER_TEMPLATE
    prompt = format_question("Where is Kenya?", PAPER_TEMPLATE)
    assert prompt + format_target("Africa", PAPER_TEMPLATE) == (
        "Answer the following question. Where is Kenya?\nAfrica\n")
    assert format_question("Where is {x}?") + format_target("y") == "Q: Where is {x}?\nA: y\n"
    for bad in ("Q: {q}\nA:", "no field", "{question} {question}", "{question"):
        with pytest.raises(ParameterError, match="prompt_template"):
            resolve("workshop", {"prompt_template": bad})

"""One encoding of the study's text into token ids, for every tokenizer and every path that
feeds a model: SliCK's k-shot prompts, training sequences, evaluation prompts, answer budgets
and the naive reference path.

A text is encoded whole, with the special tokens the tokenizer puts before a text (its BOS,
where it adds one; nothing it would append, such as an EOS, since a prompt is continued). A
piece of a longer text (the exemplars shared by many questions, a prompt before its target) is
cut from the ids of the whole text, never tokenized apart: a byte-level BPE merges a trailing
blank line into one token that the same blank line before ``Q:`` is not, and a SentencePiece
(Metaspace) tokenizer marks the first word of a text differently from the same word inside
one. Tokenizers only: no torch."""

from __future__ import annotations

PROBE = "a"          # a text every tokenizer encodes, to see what it adds around one


def leading_specials(tok) -> list[int]:
    """The ids ``tok`` puts before a text when it adds special tokens (e.g. ``[bos_id]``), read
    from the tokenizer itself (computed once per tokenizer object: reload a tokenizer whose
    special-token settings were changed)."""
    cached = getattr(tok, "_knowshift_leading", None)
    if cached is None:
        with_specials = tok(PROBE, add_special_tokens=True).input_ids
        plain = tok(PROBE, add_special_tokens=False).input_ids
        start = next((i for i in range(len(with_specials) - len(plain) + 1)
                      if with_specials[i:i + len(plain)] == plain), None)
        if start is None:           # the text's ids changed too: keep the special ones in front
            special = set(tok.all_special_ids)
            start = next((i for i, t in enumerate(with_specials) if t not in special),
                         len(with_specials))
        cached = list(with_specials[:start])
        tok._knowshift_leading = cached
    return list(cached)


def encode(tok, text: str) -> list[int]:
    """The ids of ``text`` as a model reads it: the tokenizer's leading special tokens, then
    the text tokenized whole."""
    return leading_specials(tok) + tok(text, add_special_tokens=False).input_ids


def common_length(a: list[int], b: list[int]) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_split(tok, head: str, tail: str) -> tuple[list[int], int]:
    """(ids of ``head + tail``, how many of them belong to ``head``): the leading ids the whole
    text shares with ``head`` encoded alone. A token that spans the boundary counts as
    ``tail``'s, so ``ids[n:]`` are exactly the ids ``tail`` has inside the whole text."""
    ids = encode(tok, head + tail)
    return ids, common_length(ids, encode(tok, head))


def shared_head(tok, prefix: str, suffixes: list[str]) -> tuple[list[int], list[list[int]]]:
    """(the ids every ``prefix + suffix`` starts with, each one's remaining ids), cut from the
    ids of each whole text, so ``head + rest`` is exactly :func:`encode` of the text. The head
    covers no more than ``prefix`` and leaves every text that has ids one of its own."""
    whole = [encode(tok, prefix + s) for s in suffixes]
    own = encode(tok, prefix)
    n = min([common_length(own, ids) for ids in whole] + [len(ids) - 1 for ids in whole],
            default=0)
    n = max(n, 0)
    head = whole[0][:n] if whole else own[:0]
    return head, [ids[n:] for ids in whole]


def answer_length(tok, prompt: str, answer: str) -> int:
    """Tokens ``answer`` takes when written after ``prompt`` (as the model would write it)."""
    ids, n = encode_split(tok, prompt, answer)
    return len(ids) - n

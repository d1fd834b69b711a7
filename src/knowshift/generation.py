"""Short-answer generation for closed-book QA, fast on a CPU.

The k-shot exemplars are the same for every question of one (relation, exemplar set), so their
key/value cache is computed once and shared by the whole batch; only each question's few tokens
and the answer are computed per row. Generation stops at the end of the answer line."""

from __future__ import annotations

import copy

import torch
from transformers import GenerationConfig


def first_line(text: str) -> str:
    """The answer is the first line of the continuation, stripped."""
    return text.strip().split("\n", 1)[0].strip()


def prompt_ids(tok, prefix: str, suffix: str) -> list[int]:
    """Token ids of ``prefix + suffix``, tokenized in two parts so that every question sees the
    exact same prefix tokens (the naive and the cached path then feed identical ids)."""
    head = tok(prefix, add_special_tokens=True).input_ids if prefix else []
    return head + tok(suffix, add_special_tokens=False).input_ids


def _gen_config(tok, max_new_tokens: int, temperature: float) -> GenerationConfig:
    sample = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample,
        temperature=temperature if sample else None, top_k=0 if sample else None,
        top_p=1.0 if sample else None, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, stop_strings=["\n"])


@torch.no_grad()
def complete(model, tok, prefix: str, suffixes: list[str], *, temperature: float = 0.0,
             num_samples: int = 1, max_new_tokens: int | list[int] = 12, batch_size: int = 32,
             seed: int = 0) -> list[list[str]]:
    """Answer every ``prefix + suffix``; return one list of ``num_samples`` answers per suffix
    (one greedy answer when ``temperature`` is 0). Deterministic given ``seed``.

    ``max_new_tokens`` may be one budget per suffix (e.g. the longest gold answer plus a margin):
    a continuation longer than any accepted answer cannot match, so generating further is waste."""
    if temperature <= 0:
        num_samples = 1
    device = model.device
    head = tok(prefix, add_special_tokens=True).input_ids if prefix else []
    prefix_cache = None
    if len(head) > 1:
        # Cache all but the last prefix token so generate always has at least one new token.
        prefix_cache = model(torch.tensor([head[:-1]], device=device), use_cache=True).cache
    cached = max(len(head) - 1, 0)
    budgets = ([max_new_tokens] * len(suffixes) if isinstance(max_new_tokens, int)
               else list(max_new_tokens))
    rows = [prompt_ids(tok, prefix, s)[cached:] for s in suffixes]
    answers: list[list[str]] = []
    per_batch = max(1, batch_size // num_samples)
    for start in range(0, len(rows), per_batch):
        chunk = [r for r in rows[start:start + per_batch] for _ in range(num_samples)]
        config = _gen_config(tok, max(budgets[start:start + per_batch]), temperature)
        width = max(len(r) for r in chunk)
        ids = torch.full((len(chunk), cached + width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        ids[:, :cached] = torch.tensor(head[:cached])
        mask[:, :cached] = 1
        for i, r in enumerate(chunk):
            ids[i, cached + width - len(r):] = torch.tensor(r)
            mask[i, cached + width - len(r):] = 1
        kwargs = {}
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(chunk))
            kwargs["cache"] = cache
        torch.manual_seed(seed + start)
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             generation_config=config, tokenizer=tok, **kwargs)
        texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        lines = [first_line(t) for t in texts]
        answers.extend(lines[i:i + num_samples] for i in range(0, len(lines), num_samples))
    return answers


@torch.no_grad()
def complete_naive(model, tok, prefix: str, suffixes: list[str], *, max_new_tokens: int = 12
                   ) -> list[str]:
    """Reference path: one plain greedy ``generate`` call per prompt, no batching, no cache
    sharing, no early stop. Used by the throughput benchmark and the equivalence test."""
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    answers = []
    for s in suffixes:
        ids = torch.tensor([prompt_ids(tok, prefix, s)], device=model.device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=config)
        answers.append(first_line(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
    return answers

"""Short-answer generation for closed-book QA, fast on a CPU.

None of these changes an answer: the k-shot exemplars shared by every question of one (relation,
exemplar set) are computed once and their key/value cache shared, and groups with different
exemplars share batches (their caches side by side), so many small groups cost the decoding steps
of one; prompts are batched by length, so little padding is computed; the sampled copies of one
prompt share its pass; and a row is done as soon as its answer line ends (a token holding a
newline, or end of sequence) or its token budget is spent, and done rows leave the batch, so short
answers do not wait for the longest one (``model.generate`` keeps finished rows to the end, about
half of the decoding steps here). Greedy answers are those of plain ``generate``
(``complete_naive``, the reference). Sampled answers are drawn by inverse CDF from uniforms of a
counter-based stream keyed by the group's seed, the prompt's ids, the copy and the step, so they do
not depend on the batch size or on what a prompt is batched with. The model's layers run under the
autocast :func:`knowshift.engine.models.load_model` chose, one autocast region per call so that the
weights are cast once, not at every step; the next token's logits are computed in float32 on every
device (bf16 weights included), so greedy choices are not made on rounded scores. Batches hold up
to ``batch_size`` rows (prompts x samples), so a GPU decodes many rows per step; a batch's cache is
assembled per prefix, not per row, and each decode step reads one tensor back from the device.

Copying the key/value cache costs about as much as attending to it, so a decode step copies none: a
batch's keys and values live in buffers sized for its longest prompt and budget, allocated once
(:class:`_Layer`, a transformers ``DynamicLayer`` whose ``keys`` are views of the filled length),
each step writes its position in place, and the attention mask is one buffer read as a view. A
finished row stays in the batch, its tokens ignored, until a quarter of the rows have finished, and
then they leave together (one copy of the rest), rather than one copy whenever any row stops; the
sampled copies of a prompt get its cache once, after its prompt pass.

Measured, and left out: feeding a guessed answer (the training target, last epoch's answer)
with the prompt and keeping what greedy decoding confirms (speculative decoding with the guess as
draft) saved nothing here: the guess's tokens cost the prompt pass what they save in decoding."""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GenerationConfig
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from .encoding import encode, shared_head
from .models import autocast
from .work import count


def first_line(text: str) -> str:
    """The answer is the first line of the continuation, stripped."""
    return text.strip().split("\n", 1)[0].strip()


def stop_mask(tok, size: int) -> torch.Tensor:
    """True for every token id that ends an answer line: end of sequence, or any token whose
    text holds a newline (computed once per tokenizer)."""
    cached = getattr(tok, "_knowshift_stop_mask", None)
    if cached is None or len(cached) != size:
        pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
        texts = [tok.convert_tokens_to_string([p]) if p is not None else "" for p in pieces]
        cached = torch.zeros(size, dtype=torch.bool)
        cached[:len(texts)] = torch.tensor(["\n" in t for t in texts])
        if tok.eos_token_id is not None:
            cached[tok.eos_token_id] = True
        tok._knowshift_stop_mask = cached
    return cached


_GOLDEN = 0x9E3779B97F4A7C15
_WORD = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on an array of uint64 (arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_keys(seed: int, ids: list[int], copies: int) -> np.ndarray:
    """One key per sampled copy of a prompt, from its group's seed and the prompt's ids alone
    (not its batch, its place in the batch or the group's other prompts)."""
    digest = hashlib.blake2b(np.asarray([seed, *ids], dtype=np.int64).tobytes(),
                             digest_size=8).digest()
    base = int.from_bytes(digest, "little")
    return _mix(np.array([(base + k * _GOLDEN) & _WORD for k in range(copies)],
                         dtype=np.uint64))


def uniforms(keys: np.ndarray, step: int) -> np.ndarray:
    """A uniform in [0, 1) per key for decode step ``step``: a counter-based stream, so a row's
    draw at a step depends on its key and the step only."""
    x = _mix(keys + np.uint64(((step + 1) * _GOLDEN) & _WORD))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def sample(logits: torch.Tensor, temperature: float, top_k: int, u: torch.Tensor
           ) -> torch.Tensor:
    """Per row, the token whose cumulative probability first exceeds ``u`` (inverse-CDF
    sampling at ``temperature``; ``top_k`` > 0 keeps the k likeliest tokens only). ``u`` of
    shape ``(rows, k)`` draws k tokens from each row, row after row."""
    scores, index = logits / temperature, None
    if 0 < top_k < scores.shape[-1]:
        scores, index = scores.topk(top_k, dim=-1)
    cdf = torch.softmax(scores, dim=-1).cumsum(-1)
    at = u.to(cdf.dtype).reshape(len(cdf), -1) * cdf[:, -1:]
    token = torch.searchsorted(cdf, at, right=True).clamp_(max=cdf.shape[-1] - 1)
    return (token if index is None else index.gather(1, token)).reshape(-1)


class _Layer(DynamicLayer):
    """One layer's keys and values in buffers allocated once per batch, ``(rows, kv heads,
    capacity, head dim)``: a step writes its position in place, and attention reads
    ``keys``/``values``, views of the filled length (a ``DynamicLayer`` concatenates, copying the
    whole cache at every step). Until :meth:`spread`, the model sees every ``stride``-th row
    only (the prompt pass of sampled copies). Buffers not given are zeros allocated on the
    first update, in the dtype the model computes keys in."""

    def __init__(self, rows: int, capacity: int, stride: int = 1, keys=None, values=None,
                 length: int = 0):
        super().__init__()
        self.rows, self.capacity, self.stride, self.length = rows, capacity, stride, length
        if keys is not None:
            self._hold(keys, values)

    def _hold(self, keys, values) -> None:
        self.buffers = keys, values
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._view()

    def _view(self) -> None:
        self.keys, self.values = (b[::self.stride, :, :self.length] for b in self.buffers)

    def lazy_initialization(self, key_states, value_states) -> None:
        rows, heads = self.rows, key_states.shape[1]
        self._hold(key_states.new_zeros(rows, heads, self.capacity, key_states.shape[3]),
                   value_states.new_zeros(rows, heads, self.capacity, value_states.shape[3]))

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        for buffer, new in zip(self.buffers, (key_states, value_states)):
            buffer[::self.stride, :, self.length:end] = new
        self.length = end
        self._view()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def spread(self, start: int) -> None:
        """Copy each computed row's positions from ``start`` on into the ``stride - 1`` rows
        after it (its sampled copies), and show every row from now on."""
        for b in self.buffers:
            grouped = b.view(-1, self.stride, *b.shape[1:])
            grouped[:, 1:, :, start:self.length] = grouped[:, :1, :, start:self.length]
        self.stride = 1
        self._view()

    def compact(self, holes: torch.Tensor, movers: torch.Tensor, kept: int) -> None:
        """Move rows ``movers`` into rows ``holes`` (finished rows among the first ``kept``),
        their filled positions only, and keep the first ``kept`` rows: only the live rows
        beyond ``kept`` are copied, and nothing is allocated but their move."""
        for b in self.buffers:
            b[holes, :, :self.length] = b[movers, :, :self.length]
        self.buffers = tuple(b[:kept] for b in self.buffers)
        self._view()


def cache_argument(decoder) -> str:
    """The name the decoder's ``forward`` takes its cache by (``cache`` since transformers 5.24,
    ``past_key_values`` before)."""
    names = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in names else "past_key_values"


# Finished rows stay in the batch, their tokens ignored, until a quarter of its rows have
# finished: each finished row costs a row's compute per step, and removing them moves the live
# rows that follow them (:meth:`_Layer.compact`). At a quarter, finished rows never cost more
# than a third of the live rows' work, and a few moves of some of the rows replace a copy of
# the whole cache on every step on which some row stops.
COMPACT_AT = 0.25


def _decode(model, ids, mask, cache, budgets, stop, temperature, top_k, keys,
            copies: int = 1) -> list[list[int]]:
    """Greedy (or sampled) continuation of a left-padded batch, ``copies`` continuations per
    prompt (row ``j * copies + k`` is copy ``k`` of prompt ``j``; the prompt is computed once and
    its positions copied into its copies' rows of the cache, :func:`_batch_cache`). ``mask`` is
    the ``(rows, capacity)`` attention mask of the whole decoding, ones after the prompts; each
    step the model reads a view of its filled length. A row is done once it has stopped; done
    rows are removed from the batch, key/value cache included, once they are ``COMPACT_AT`` of
    its rows. Row ``r`` samples with the uniforms of ``keys[r]`` (:func:`sample_keys`), so its
    draws do not depend on what it is batched with. ``top_k`` (0: off) samples among the k
    likeliest tokens only. The chosen tokens are the one thing read back from the device per
    step: which rows go on is decided on the host, and index tensors (and the step's uniforms)
    go to the device."""
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    weight = head.weight.float()               # no copy when the head is float32 already
    bias = None if head.bias is None else head.bias.float()
    argument = cache_argument(decoder)
    device, n_rows = ids.device, ids.shape[0] * copies
    rows = torch.arange(n_rows)                # the row each place of the batch holds
    live = torch.ones(n_rows, dtype=torch.bool)
    left = torch.tensor(budgets).repeat_interleave(copies)
    start = cache.get_seq_length()             # the prompts' first position
    position = (mask[::copies, :start + ids.shape[1]].cumsum(1) - 1).clamp(min=0)
    position = position[:, start:]
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []          # (rows, tokens) per step
    step, stride = ids, copies
    while True:
        filled = cache.get_seq_length() + step.shape[1]
        with autocast(model):
            hidden = decoder(input_ids=step, attention_mask=mask[::stride, :filled],
                             position_ids=position, use_cache=True,
                             **{argument: cache}).last_hidden_state[:, -1]
        with torch.autocast(hidden.device.type, enabled=False):
            logits = F.linear(hidden.float(), weight, bias)
        if temperature > 0:                    # a prompt's copies draw from its one row
            u = torch.from_numpy(uniforms(keys, len(steps))).to(device)
            token = sample(logits, temperature, top_k, u.view(len(logits), stride))
        else:
            token = logits.argmax(-1).repeat_interleave(stride)
        if stride > 1:
            for layer in cache.layers:
                layer.spread(start)
            position = position.repeat_interleave(stride, dim=0)
            stride = 1
        chosen = token.cpu()                   # the step's one read from the device
        steps.append((rows[live], chosen[live]))
        count(forward_passes=1, decode_steps=1, generated_tokens=int(live.sum()))
        left = left - 1
        live &= ~stop[chosen] & (left > 0)
        if not live.any():
            break
        if (~live).sum() >= COMPACT_AT * len(live):
            kept = int(live.sum())             # live rows beyond the first kept fill the holes
            holes = (~live[:kept]).nonzero().squeeze(1)
            movers = live[kept:].nonzero().squeeze(1) + kept
            for layer in cache.layers:
                layer.compact(holes.to(device), movers.to(device), kept)
            order = torch.arange(kept)         # the place each row now held came from
            order[holes] = movers
            rows, left, live = rows[order], left[order], live[order]
            if keys is not None:
                keys = keys[order.numpy()]
            on = order.to(device)
            token, mask, position = token[on], mask[on], position[on]
        position = position[:, -1:] + 1
        step = token[:, None]
    out: list[list[int]] = [[] for _ in range(n_rows)]
    for on_rows, chosen in steps:
        for r, t in zip(on_rows.tolist(), chosen.tolist()):
            out[r].append(t)
    return out


def _prefix_states(model, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the keys and values of a shared prefix (computed once, reused by batches)."""
    if not ids:
        return []
    decoder, cache = model.get_decoder(), DynamicCache(config=model.config)
    with autocast(model):
        decoder(input_ids=torch.tensor([ids], device=model.device), use_cache=True,
                **{cache_argument(decoder): cache})
    return [(layer.keys, layer.values) for layer in cache.layers]


def _batch_cache(model, states: list, width: int, capacity: int, copies: int = 1) -> Cache:
    """A cache of ``len(states) * copies`` rows of ``capacity`` positions, holding each row's
    prefix states right-aligned to ``width`` positions (the masked zeros on the left are never
    attended to); until the prompt pass is done it shows the first copy of each prompt only
    (:meth:`_Layer.spread`). Rows of one prefix share its states (``states`` holds the same
    object for them): each distinct prefix is placed once per layer, and the rows gathered from
    those in one indexing operation that also allocates the buffers, so the work per batch grows
    with its prefixes, not its rows."""
    config = model.config.get_text_config(decoder=True)
    window = getattr(config, "sliding_window", None)
    if window and capacity >= window:           # a sliding-window layer would drop positions
        raise ValueError(f"prompts and answers of {capacity} tokens exceed the model's "
                         f"sliding window of {window}")
    rows = len(states) * copies
    if width == 0:
        return Cache(layers=[_Layer(rows, capacity, copies)
                             for _ in range(config.num_hidden_layers)])
    distinct: dict[int, int] = {}            # id of a prefix's states -> its place
    prefixes = []
    for row in states:
        if id(row) not in distinct:
            distinct[id(row)] = len(prefixes)
            prefixes.append(row)
    reference = next(row for row in prefixes if row)
    index = torch.tensor([distinct[id(row)] for row in states],
                         device=reference[0][0].device).repeat_interleave(copies)
    layers = []
    for layer in range(len(reference)):
        buffers = []
        for kind, state in enumerate(reference[layer]):
            placed = state.new_zeros(len(prefixes), state.shape[1], capacity, state.shape[3])
            for p, row in enumerate(prefixes):
                if row:                      # not the prompts without a shared prefix
                    n = row[layer][kind].shape[2]
                    placed[p, :, width - n:width] = row[layer][kind][0]
            buffers.append(placed.index_select(0, index))
        layers.append(_Layer(rows, capacity, copies, *buffers, length=width))
    return Cache(layers=layers)


def encode_groups(tok, groups) -> list[tuple[list[int], list[list[int]]]]:
    """Per group ``(prefix, suffixes, ...)``, the ids its prompts share (computed once) and
    each prompt's own: together the ids of the prompt's whole text
    (:func:`knowshift.engine.encoding.shared_head`)."""
    return [shared_head(tok, prefix, list(suffixes)) for prefix, suffixes, *_ in groups]


@torch.no_grad()
def complete_many(model, tok, groups: list[tuple[str, list[str], list[int], int]], *,
                  temperature: float = 0.0, num_samples: int = 1, top_k: int = 0,
                  batch_size: int = 32) -> list[list[list[str]]]:
    """Answer every ``prefix + suffix`` of several groups ``(prefix, suffixes, budgets,
    seed)`` in shared batches (rows of different prefixes side by side, so that many small
    groups cost the decoding steps of one); per group, per suffix, ``num_samples`` answers
    (one greedy answer when ``temperature`` is 0). ``budgets`` cap each answer's tokens: a
    continuation longer than any accepted answer cannot match, so generating further is waste.
    Every prompt is the ids of its whole text (:mod:`knowshift.engine.encoding`); the ids its group's
    prompts share are computed once. Deterministic given the seeds."""
    with autocast(model):
        return _complete_many(model, tok, groups, temperature, num_samples, top_k, batch_size)


def batches(tok, groups, temperature: float, num_samples: int, batch_size: int):
    """How :func:`complete_many` cuts its work: (the shared ids of each group, the number of
    answers per prompt, the batches), a batch being a list of prompts ``(group, index, own
    ids, budget)`` sorted by length, ``batch_size // answers per prompt`` of them. Shared by
    the generation and by ``knowshift plan``, so that a plan counts the batches a run makes."""
    if temperature <= 0:
        num_samples = 1
    encoded = encode_groups(tok, groups)
    heads = [head for head, _ in encoded]
    units = [(g, i, rest, budgets[i])
             for g, ((_, rests), (_, _, budgets, _)) in enumerate(zip(encoded, groups))
             for i, rest in enumerate(rests)]
    units.sort(key=lambda u: len(u[2]))
    per_batch = max(1, batch_size // num_samples)
    return heads, num_samples, [units[s:s + per_batch] for s in range(0, len(units), per_batch)]


def prefix_work(heads) -> dict[str, int]:
    """The work of computing a call's distinct shared prefixes once each (:mod:`knowshift.engine.work`
    counts; the plan counts the same)."""
    distinct = {tuple(h) for h in heads}
    return {"forward_passes": sum(1 for h in distinct if h),
            "prompt_tokens": sum(len(h) for h in distinct)}


def batch_work(picked, num_samples: int) -> dict[str, int]:
    """The known work of one batch of :func:`batches`: its prompts, rows, prompt tokens and
    the budgets of its rows (what is generated depends on the answers)."""
    return {"batches": 1, "prompts": len(picked), "rows": len(picked) * num_samples,
            "prompt_tokens": sum(len(row) for _, _, row, _ in picked),
            "budget_tokens": num_samples * sum(b for *_, b in picked)}


def _complete_many(model, tok, groups, temperature, num_samples, top_k, batch_size):
    device = model.device
    heads, num_samples, cut = batches(tok, groups, temperature, num_samples, batch_size)
    states = {}
    for ids in heads:
        states.setdefault(tuple(ids), None)
    for key in states:
        states[key] = _prefix_states(model, list(key))
    count(**prefix_work(heads))
    stop = stop_mask(tok, model.config.vocab_size)
    answers = [[[] for _ in suffixes] for _, suffixes, _, _ in groups]
    for picked in cut:
        count(**batch_work(picked, num_samples))
        prefix_width = max(len(heads[g]) for g, *_ in picked)
        width = max(len(ids) for _, _, ids, _ in picked)
        capacity = prefix_width + width + max(b for *_, b in picked)
        ids = torch.full((len(picked), width), tok.pad_token_id, dtype=torch.long)
        # the attention mask of the whole decoding: prefix and prompt, then the answer
        mask = torch.ones((len(picked) * num_samples, capacity), dtype=torch.bool)
        mask[:, :prefix_width + width] = False
        for j, (g, _, row, _) in enumerate(picked):
            ids[j, width - len(row):] = torch.tensor(row)
            its_rows = slice(j * num_samples, (j + 1) * num_samples)
            mask[its_rows, prefix_width - len(heads[g]):prefix_width] = True
            mask[its_rows, prefix_width + width - len(row):prefix_width + width] = True
        cache = _batch_cache(model, [states[tuple(heads[g])] for g, *_ in picked],
                             prefix_width, capacity, num_samples)
        keys = None if temperature <= 0 else np.concatenate(
            [sample_keys(groups[g][3], heads[g] + row, num_samples) for g, _, row, _ in picked])
        tokens = _decode(model, ids.to(device), mask.to(device), cache,
                         [b for *_, b in picked], stop, temperature, top_k, keys,
                         copies=num_samples)
        texts = tok.batch_decode(tokens, skip_special_tokens=True)
        for j, (g, i, _, _) in enumerate(picked):
            answers[g][i] = [first_line(t) for t in texts[j * num_samples:(j + 1) * num_samples]]
    return answers


def complete(model, tok, prefix: str, suffixes: list[str], *, temperature: float = 0.0,
             num_samples: int = 1, top_k: int = 0, max_new_tokens: int | list[int] = 12,
             batch_size: int = 32, seed: int = 0) -> list[list[str]]:
    """Answer every ``prefix + suffix`` (one group of :func:`complete_many`);
    ``max_new_tokens`` is one budget for all or one per suffix."""
    budgets = ([max_new_tokens] * len(suffixes) if isinstance(max_new_tokens, int)
               else list(max_new_tokens))
    return complete_many(model, tok, [(prefix, suffixes, budgets, seed)],
                         temperature=temperature, num_samples=num_samples, top_k=top_k,
                         batch_size=batch_size)[0]


@torch.no_grad()
def complete_naive(model, tok, prefix: str, suffixes: list[str], *, max_new_tokens: int = 12
                   ) -> list[str]:
    """Reference path: one plain greedy ``generate`` call per prompt (the ids of its whole text,
    :func:`knowshift.engine.encoding.encode`), no batching, no cache sharing, no early stop. Used by
    the throughput benchmark and the equivalence test."""
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    answers = []
    for s in suffixes:
        ids = torch.tensor([encode(tok, prefix + s)], device=model.device)
        with autocast(model):
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 generation_config=config)
        answers.append(first_line(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
    return answers

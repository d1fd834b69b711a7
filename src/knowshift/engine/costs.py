"""Seconds per unit of work on one device (prompt tokens, decode steps and rows, optimiser steps
and trained tokens, model loads), measured on a loaded model: what ``knowshift plan`` multiplies
its counts by. Torch and transformers only, so ``make gpu-check`` measures them on a GPU machine
that has nothing else installed."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from ..core.errors import ParameterError
from . import training
from .generation import cache_argument
from .models import autocast


@dataclass
class Costs:
    """Seconds per unit of work on one device, for one model and precision."""
    device: str
    model: str
    precision: str
    prompt_token_s: float          # per token of a prompt pass
    step_s: float                  # per decode step, whatever its rows
    row_step_s: float              # per row of a decode step
    train_step_s: float            # per optimiser step, whatever its tokens
    train_token_s: float           # per trained token
    load_s: float                  # per model load

    @classmethod
    def read(cls, path: str | Path) -> "Costs":
        try:
            data = json.loads(Path(path).read_text())
            data = data.get("costs", data)
            return cls(**{f: data[f] for f in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ParameterError(f"costs file {path} is not one `knowshift plan --measure` or "
                                 f"`make gpu-check` wrote ({type(err).__name__}: {err})") from None


def _sync(net) -> None:
    if net.device.type == "cuda":
        torch.cuda.synchronize()


def _timed(net, fn, repeats: int = 2) -> float:
    fn()                                         # warm-up
    _sync(net)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(net)
        best = min(best, time.perf_counter() - start)
    return best


def measure_loaded(net, tok, cfg, rows: tuple[int, int], load_s: float, model: str,
                   context: int = 96, train_length: int = 24) -> Costs:
    """Costs of a loaded model: prompt passes, decode steps at ``rows`` (two sizes, for the
    per-step and per-row parts) and optimiser steps at ``cfg``'s batch size and its half."""
    decoder, head = net.get_decoder(), net.get_output_embeddings()
    argument = cache_argument(decoder)
    vocab = min(len(tok), net.config.vocab_size)
    gen = torch.Generator().manual_seed(0)

    def ids(n, width):
        return torch.randint(0, vocab, (n, width), generator=gen).to(net.device)

    prompt = ids(8, 64)
    with torch.no_grad(), autocast(net):
        prompt_s = _timed(net, lambda: decoder(input_ids=prompt, use_cache=False)) / prompt.numel()
        per_step = []
        for r in rows:
            cache_ids, step = ids(r, context), ids(r, 1)

            def steps(cache_ids=cache_ids, step=step):
                cache = DynamicCache(config=net.config)
                decoder(input_ids=cache_ids, use_cache=True, **{argument: cache})
                for _ in range(4):
                    h = decoder(input_ids=step, use_cache=True, **{argument: cache}).last_hidden_state
                    F.linear(h[:, -1].float(), head.weight.float()).argmax(-1).cpu()
            whole = _timed(net, steps, repeats=1)
            per_step.append((whole - prompt_s * cache_ids.numel()) / 4)
    (r1, t1), (r2, t2) = zip(rows, per_step)
    row_s = max(0.0, (t2 - t1) / (r2 - r1)) if r2 != r1 else t2 / r2
    step_s = max(0.0, t1 - row_s * r1)
    model_t = training.prepare(net, cfg)
    model_t.train()
    optim = training.make_optimizer(model_t, cfg)
    sizes = (max(1, cfg.ft_batch_size // 2), cfg.ft_batch_size)
    per_train = []
    for b in sizes:
        x = ids(b, train_length)
        labels = x.clone()
        labels[:, : train_length // 2] = -100
        mask = torch.ones_like(x)

        def one(x=x, labels=labels, mask=mask):
            training.answer_loss(model_t, x, mask, labels).backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        per_train.append(_timed(net, one))
    (b1, s1), (b2, s2) = zip(sizes, per_train)
    token_s = max(0.0, (s2 - s1) / ((b2 - b1) * train_length)) if b2 != b1 else s2 / (
        b2 * train_length)
    train_step_s = max(0.0, s1 - token_s * b1 * train_length)
    training.release(model_t, cfg)
    return Costs(device_name(net.device), model, cfg.precision, prompt_s, step_s, row_s,
                 train_step_s, token_s, load_s)


def device_name(device) -> str:
    """A device as costs name it: the GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "CPU"
    return f"{name}, {os.cpu_count()} cores"

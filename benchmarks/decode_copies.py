"""Bytes copied per decode step at 1,024 rows: the generation before the preallocated cache
(``engine/generation.py`` at commit ``LEGACY``, read from git history) and the current one, side
by side, on a tiny random model of the ``paper`` profile's shape (``knowshift.gpucheck``'s
``build_model(small=True)``, the repository's metaspace tokenizer), greedy and sampled.

A ``TorchDispatchMode`` sums the bytes written by the data-moving ATen operations (concatenation,
indexing, gathers, copies, clones, repeats, scatters, dtype conversions) that the generation
calls during one ``complete_many`` call (the batch's cache assembly and prompt pass included),
divided by its decode steps, and split: ``setup`` (the batch's cache assembly and prompt pass,
once per batch) and ``steps`` (the decode steps after the prompt pass, and what is done between
them: growing, selecting and copying the cache), per such step; the target (4x fewer) is on the
steps. It sees the operations called from Python, not copies a fused kernel may make inside
itself. Both versions must give the same answers and decode steps (asserted).

    PYTHONPATH=src python benchmarks/decode_copies.py [--rows 1024] [--attention sdpa|eager]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from knowshift.engine import generation, work
from knowshift.gpucheck import build_model, slick_groups

LEGACY = "fd09eb7"          # the last commit whose decoding grew and copied its cache each step
aten = torch.ops.aten
# operations that write a new tensor out of others' data: bytes = their output
MOVES = {aten.cat, aten.stack, aten.index, aten.index_select, aten.gather, aten.clone,
         aten.repeat_interleave, aten.repeat, aten.slice_scatter, aten.select_scatter,
         aten._to_copy, aten.constant_pad_nd, aten.masked_select}
# in-place writes: bytes = what they write (the destination view, the values put)
WRITES = {aten.copy_: 0, aten.index_put_: 2, aten.index_put: 2, aten.index_copy_: 3,
          aten.index_copy: 3, aten.scatter_: 3}


def _bytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


class Copies(TorchDispatchMode):
    """Bytes written by data-moving operations, per operation and per phase: ``setup`` (a
    batch's cache assembly, and the prompt passes: decoder calls on more than one position) and
    ``steps`` (the rest: the decode steps, and what is done between them). Hooks on the model
    and a wrapper of the module's ``_batch_cache`` switch the phase."""

    def __init__(self, module, decoder):
        super().__init__()
        self.by_op, self.by_phase, self.phase = Counter(), Counter(), "steps"
        self.module, self.assemble = module, module._batch_cache
        self.hooks = [decoder.register_forward_pre_hook(self._start, with_kwargs=True),
                      decoder.register_forward_hook(self._end)]

        def assemble(*args, **kwargs):
            self.phase = "setup"
            try:
                return self.assemble(*args, **kwargs)
            finally:
                self.phase = "steps"
        module._batch_cache = assemble

    def _start(self, module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            self.phase = "setup"

    def _end(self, *_):
        self.phase = "steps"

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()
        self.module._batch_cache = self.assemble
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet, written = func.overloadpacket, 0
        if packet in MOVES:
            written = sum(_bytes(t) for t in (out if isinstance(out, (tuple, list)) else (out,)))
        elif packet in WRITES:
            written = _bytes(args[WRITES[packet]])
        if written:
            self.by_op[packet.__name__] += written
            self.by_phase[self.phase] += written
        return out


def legacy_generation():
    """``knowshift.engine.generation`` as it was at ``LEGACY`` (its relative imports resolve in
    the installed package)."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "-C", str(root), "show",
                             f"{LEGACY}:src/knowshift/engine/generation.py"],
                            check=True, capture_output=True, text=True).stdout
    name = "knowshift.engine.legacy_generation"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "knowshift.engine"
    sys.modules[name] = module
    exec(compile(source, f"{LEGACY}:generation.py", "exec"), module.__dict__)
    return module


def measure(module, net, tok, groups, temperature, samples, rows):
    """Answers, decode steps (a batch's prompt pass counted as its first, as the work counts
    do), bytes per decode step (all; setup; the steps after the prompt pass, per such step),
    seconds per call (timed again outside the dispatch mode), bytes by operation."""
    with work.recording() as done, Copies(module, net.get_decoder()) as copies:
        answers = module.complete_many(net, tok, groups, temperature=temperature,
                                       num_samples=samples, batch_size=rows)
    t = done["other"]
    start = time.perf_counter()
    module.complete_many(net, tok, groups, temperature=temperature, num_samples=samples,
                         batch_size=rows)
    seconds = time.perf_counter() - start
    per_step = {"all": sum(copies.by_phase.values()) / t.decode_steps,
                "setup": copies.by_phase["setup"] / t.decode_steps,
                "steps": copies.by_phase["steps"] / (t.decode_steps - t.batches)}
    return answers, t.decode_steps, per_step, seconds, copies.by_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    net, tok = build_model(torch.device("cpu"), small=True)
    net.config._attn_implementation = args.attention
    legacy = legacy_generation()
    print(f"tiny random model ({net.config.num_hidden_layers} layers, "
          f"{net.config.num_key_value_heads} kv heads, {args.attention}), {args.rows} rows per "
          f"batch; bytes written by data-moving operations per decode step")
    ratios = []
    for label, temperature, samples in (("greedy", 0.0, 1), ("sampled T=0.5 x4", 0.5, 4)):
        groups = slick_groups(random.Random(0), 8, args.rows // samples // 8)
        for g, (prefix, prompts, budgets, seed) in enumerate(groups):   # answers stop apart
            groups[g] = (prefix, prompts, [2 + (i * 7 + g) % 11 for i in range(len(prompts))],
                         seed)
        old = measure(legacy, net, tok, groups, temperature, samples, args.rows)
        new = measure(generation, net, tok, groups, temperature, samples, args.rows)
        assert old[0] == new[0], f"{label}: the answers differ"
        assert old[1] == new[1], f"{label}: decode steps differ ({old[1]} and {new[1]})"
        ratio = {k: old[2][k] / new[2][k] for k in old[2]}
        ratios.append(ratio["steps"])
        print(f"\n{label}: {old[1]} decode steps (the prompt pass the first), answers identical")
        print(f"  MB per decode step {'all':>7} {'setup':>7} {'steps':>7} {'s/call':>7}  largest")
        for name, (_, steps, per_step, seconds, by_op) in (("before", old), ("now", new)):
            top = ", ".join(f"{op} {b / steps / 2 ** 20:.1f}" for op, b in by_op.most_common(3))
            print(f"  {name:18} " + " ".join(f"{per_step[k] / 2 ** 20:7.2f}" for k in per_step)
                  + f" {seconds:7.2f}  {top}")
        print(f"  {'ratio':18} " + " ".join(f"{ratio[k]:6.1f}x" for k in ratio))
    print("\nsetup: cache assembly and prompt passes, per decode step; steps: the rest, per "
          "decode step after the prompt pass")
    if min(ratios) < 4:                # the target: the steps, what the cache's copies cost
        sys.exit(f"fewer than 4x fewer bytes per decode step: {min(ratios):.1f}x")


if __name__ == "__main__":
    main()

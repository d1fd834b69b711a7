"""``make gpu-check``: the GPU path at the ``paper`` profile's shape, in a few minutes, with what a
bare GPU machine has (PyTorch) and the wheels ``make gpu-wheels`` carries there, and no hub. It
imports the engine alone (generation, training, costs), none of the study's analysis libraries
(a test reads its import closure).

A model of Mistral-7B's config (kept in ``knowshift/shapes``) is built on the device with random
weights, with the tokenizer kept in the repository (``tests/data/tokenizers/metaspace``, a
Llama-style tokenizer; ids beyond its vocabulary decode to nothing, which changes no cost).
It then runs SliCK's greedy and sampled passes and LoRA epochs at the profile's batch sizes
through the code the stages run, and prints rows per decode step, tokens per second, step
times and peak memory; checks that the fast generation answers as plain ``generate`` does in
float32; and measures the per-token costs ``knowshift plan --costs`` reads. ``--small`` runs
the same on a tiny random config (the CPU test in ``make test``). Exit 1 if a check fails."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .core.layout import REPOSITORY
from .core.params import resolve
from .engine import generation, training, work
from .engine.costs import device_name, measure_loaded
from .engine.training import FinetuneConfig

TOKENIZER = REPOSITORY / "tests" / "data" / "tokenizers" / "metaspace"
SHAPE = Path(__file__).with_name("shapes") / "mistralai--Mistral-7B-v0.1.json"
SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2}
# the oldest transformers the engine was run with (5.17 is what a GPU image here holds)
NEEDS = {"transformers": (5, 17)}
WORDS = ("river", "stone", "castle", "orange", "valley", "piano", "harbor", "lantern", "meadow",
         "canyon", "violet", "marble", "falcon", "summit", "garden", "tunnel", "copper", "willow")


def _check_versions() -> None:
    import transformers
    have = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    if have < NEEDS["transformers"]:
        sys.exit(f"gpu-check: transformers {transformers.__version__} is older than knowshift "
                 f"needs ({'.'.join(map(str, NEEDS['transformers']))}); carry the wheel: "
                 "`make gpu-wheels` where the registry is reachable, then `make gpu-check` "
                 "installs .gpu-wheels/ into .gpu-deps/ (docs/gpu.md)")


def random_config(small: bool, **changes):
    """The config of the paper profile's model (or a tiny one of its architecture), with
    ``changes``: what gpu-check and gpu-smoke build their random models from."""
    from transformers import AutoConfig
    data = json.loads(SHAPE.read_text())
    if small:
        data |= SMALL
    return AutoConfig.for_model(**data | changes)


def build_model(device: torch.device, small: bool):
    """A random model of the paper profile's shape (or a tiny one) built on ``device``: bf16
    weights on CUDA, as the profile loads them, float32 on a CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    config = random_config(small)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        net = AutoModelForCausalLM.from_config(config, dtype=dtype)
    net.eval()
    net.knowshift_identity = f"random:{SHAPE.stem}{':small' if small else ''}"
    net.knowshift_autocast = None
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    return net, tok


def _question(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(WORDS, 2)
    return f"Which country is {a.title()} {b.title()} located in?", rng.choice(WORDS).title()


def slick_groups(rng: random.Random, n_groups: int, per_group: int, k_shot: int = 4,
                 budget: int = 8) -> list[tuple]:
    """SliCK-like groups: a k-shot prefix of exemplars and questions, as
    :func:`knowshift.engine.generation.complete_many` takes them."""
    groups = []
    for g in range(n_groups):
        shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in (_question(rng) for _ in range(k_shot)))
        groups.append((shots, [f"Q: {_question(rng)[0]}\nA:" for _ in range(per_group)],
                       [budget] * per_group, g))
    return groups


def _peak(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def _reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def timed_generation(net, tok, groups, temperature: float, n: int, rows: int, top_k: int
                     ) -> dict:
    _reset(net.device)
    start = time.perf_counter()
    with work.recording() as done:
        generation.complete_many(net, tok, groups, temperature=temperature, num_samples=n,
                                 top_k=top_k, batch_size=rows)
    if net.device.type == "cuda":
        torch.cuda.synchronize(net.device)
    seconds = time.perf_counter() - start
    t = done["other"]
    return {"rows_per_batch": rows, "batches": t.batches, "rows": t.rows,
            "decode_steps": t.decode_steps, "generated_tokens": t.generated_tokens,
            "rows_per_decode_step": t.generated_tokens / max(1, t.decode_steps),
            "seconds": seconds, "tokens_per_s": t.generated_tokens / seconds,
            "step_ms": 1000 * seconds / max(1, t.decode_steps), "peak_gib": _peak(net.device)}


def timed_lora(net, tok, config: FinetuneConfig, steps: int, rng: random.Random) -> dict:
    examples = [_question(rng) for _ in range(steps * config.ft_batch_size)]
    data = training.encode(tok, [q for q, _ in examples], [a for _, a in examples])
    model = training.prepare(net, config)
    model.train()
    optim = training.make_optimizer(model, config)
    order = list(range(len(data)))
    training.train_epoch(model, optim, data, order[:config.ft_batch_size], config.ft_batch_size,
                         tok.pad_token_id)                       # warm-up step
    _reset(net.device)
    start = time.perf_counter()
    with work.recording() as done:
        training.train_epoch(model, optim, data, order, config.ft_batch_size, tok.pad_token_id)
    if net.device.type == "cuda":
        torch.cuda.synchronize(net.device)
    seconds = time.perf_counter() - start
    training.release(model, config).eval()
    t = done["other"]
    return {"batch_size": config.ft_batch_size, "steps": t.train_steps,
            "trained_tokens": t.trained_tokens, "seconds": seconds,
            "step_ms": 1000 * seconds / t.train_steps, "tokens_per_s": t.trained_tokens / seconds,
            "peak_gib": _peak(net.device)}


def equivalence(net, tok, rng: random.Random, n: int = 12) -> dict:
    """Greedy answers of the fast path and of one plain ``generate`` per prompt, in float32."""
    net.float()
    prefix, suffixes, _, _ = slick_groups(rng, 1, n)[0]
    fast = [a[0] for a in generation.complete(net, tok, prefix, suffixes, max_new_tokens=8,
                                              batch_size=n)]
    naive = generation.complete_naive(net, tok, prefix, suffixes, max_new_tokens=8)
    return {"prompts": n, "same": sum(a == b for a, b in zip(fast, naive))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a tiny random config (CPU test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", default="paper", help="whose batch sizes to use")
    parser.add_argument("--lora-steps", type=int, default=8)
    parser.add_argument("--out", default="gpu-check.json", help="figures and costs (JSON)")
    args = parser.parse_args(argv)
    _check_versions()
    device = torch.device(args.device)
    p = resolve(args.profile, {})
    rng = random.Random(0)
    start = time.perf_counter()
    net, tok = build_model(device, args.small)
    built_s = time.perf_counter() - start
    rows = p["batch_size"]
    n_ex = p["n_exemplar_sets"]
    greedy = timed_generation(net, tok, slick_groups(rng, n_ex, -(-rows // n_ex)), 0.0, 1,
                              rows, 0)
    per_prompt = max(1, rows // p["n_samples"])
    sampled = timed_generation(net, tok, slick_groups(rng, n_ex, -(-per_prompt // n_ex)),
                               p["temperature"], p["n_samples"], rows, p["top_k"])
    config = FinetuneConfig(method="lora", lora_r=p["lora_r"], ft_batch_size=p["ft_batch_size"],
                            learning_rate=p["learning_rate"],
                            precision="bf16" if device.type == "cuda" else "fp32")
    lora = timed_lora(net, tok, config, args.lora_steps, rng)
    costs = measure_loaded(net, tok, config, (max(1, rows // 8), rows), built_s,
                            net.knowshift_identity)
    same = equivalence(net, tok, rng)
    report = {"device": device_name(device), "torch": torch.__version__,
              "model": net.knowshift_identity,
              "parameters": sum(x.numel() for x in net.parameters()), "build_s": built_s,
              "slick_greedy": greedy, "slick_sample": sampled, "lora": lora,
              "fp32_equivalence": same, "costs": asdict(costs)}
    Path(args.out).write_text(json.dumps(report, indent=2))
    for name in ("slick_greedy", "slick_sample"):
        r = report[name]
        print(f"{name}: {r['rows']} rows in {r['batches']} batches of <= {rows}; "
              f"{r['rows_per_decode_step']:.0f} rows per decode step, "
              f"{r['tokens_per_s']:.0f} tokens/s, {r['step_ms']:.1f} ms per step"
              + (f", peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] else ""))
    print(f"lora: {lora['steps']} steps of {lora['batch_size']}: {lora['step_ms']:.0f} ms per "
          f"step, {lora['tokens_per_s']:.0f} trained tokens/s"
          + (f", peak {lora['peak_gib']:.1f} GiB" if lora["peak_gib"] else ""))
    print(f"fp32: fast generation answered {same['same']}/{same['prompts']} prompts as plain "
          f"generate; costs and figures in {args.out} (knowshift plan --costs {args.out})")
    return 0 if same["same"] == same["prompts"] else 1


if __name__ == "__main__":
    sys.exit(main())

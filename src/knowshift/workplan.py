"""``knowshift plan``: what a profile's run will do, before it runs: each stage's work (prompts,
prompt, generated and trained tokens, forward passes), its peak memory, and its time on a
device whose per-token costs were measured (``--measure`` here, or a costs file measured on
the device, e.g. by ``make gpu-check``).

The work is counted with the code the stages run (the SliCK prompts and their blocks, the
generation batches, the fine-tuning sets and their encoding), so what is known before a run is
exact: the greedy pass, the prompts and batches of every evaluation, the trained examples,
tokens and optimiser steps. Three things depend on the model's answers and are given as *at
most*: which questions the sampled pass asks (those greedy decoding never got right; exact once
stage 2 has run), how many tokens each answer takes (at most its budget; expected: its gold
answer and the newline), and whether a run re-answers its test sets at EARLY_STOP. Before
stage 2 has run, the fine-tuning sets are not drawn yet, so their tokens are estimated from
train questions of the study set (sizes and steps are exact). A stage's finished products are
read from the run folder when they are current, so a plan of a half-done run is exact for the
rest. The audit walk-through (stage 8) is estimated as SliCK on its ``audit_size`` questions.

Time is ``prompt tokens x prompt cost + decode steps x step cost + generated tokens x row
cost + optimiser steps x step cost + trained tokens x token cost + model loads x load time``;
notebooks, analyses and the book (seconds on a CPU) are not counted."""

from __future__ import annotations

import heapq
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

import pandas as pd

from .core.layout import RunFolder
from .core.params import Params
from .core.schema import format_question, format_target
from .engine import evaluation, generation
from .engine.encoding import answer_length
from .engine.models import (DEFAULT_MODEL, compute_dtypes, resolve_model, resolve_precision,
                            with_precision)
from .engine import training
from .engine.costs import Costs, measure_loaded
from .engine.work import Tally
from .study import facts as facts_mod
from .study import finetune, finetune_sets, slick
from .study.finetune_schedule import tested_when, training_runs

GIB = 2 ** 30
# counts that depend on the model's answers: a plan gives the most they can be
BOUND_COUNTS = ("generated_tokens", "decode_steps", "forward_passes")


@dataclass
class Phase:
    """One phase of a stage's work."""
    stage: str
    phase: str
    counts: Tally = field(default_factory=Tally)
    exact: bool = True                      # False: the prompts and rows are at most
    expected_generated: int = 0
    expected_steps: int = 0
    largest: int = 0        # the largest batch: rows x positions (generation), tokens (training)
    peak_bytes: int = 0
    note: str = ""
    # the pieces an executor farms out (SliCK's blocks, the fine-tuning runs), each as a phase
    # of its own; phases of one ``group`` have one piece per run, in the same order
    pieces: list["Phase"] = field(default_factory=list)
    group: str = ""

    def seconds(self, c: Costs) -> float:
        n = self.counts
        return (n.prompt_tokens * c.prompt_token_s + self.expected_steps * c.step_s
                + self.expected_generated * c.row_step_s + n.train_steps * c.train_step_s
                + n.trained_tokens * c.train_token_s + n.model_loads * c.load_s)

    def absorb(self, piece: "Phase") -> None:
        """Count ``piece`` in this phase and keep it as one of its pieces."""
        self.counts.add(**piece.counts.as_dict())
        self.expected_generated += piece.expected_generated
        self.expected_steps += piece.expected_steps
        self.largest = max(self.largest, piece.largest)
        self.pieces.append(piece)


@dataclass
class Shape:
    """What memory depends on, read from a model's config."""
    source: str
    parameters: int
    lora_parameters: dict[int, int]         # LoRA rank -> trainable parameters
    layers: int
    kv_values_per_token: int                # keys and values one token keeps, all layers
    hidden: int
    intermediate: int
    vocab: int


# ------------------------------------------------------------------------------ model shape
def _known_shape(model: str) -> Path | None:
    path = resources.files("knowshift") / "shapes" / f"{model.replace('/', '--')}.json"
    return Path(str(path)) if path.is_file() else None


def model_config(model: str):
    """The model's config: from its folder or the local hub cache, else from the shapes the
    package keeps for the profiles' hub models; None if neither has it."""
    from transformers import AutoConfig
    try:
        return AutoConfig.from_pretrained(resolve_model(model)[0], local_files_only=True,
                                          trust_remote_code=False)
    except Exception:                          # a hub id that is not in the local cache
        known = _known_shape(model)
        return AutoConfig.for_model(**json.loads(known.read_text())) if known else None


def shape_of(config, lora_ranks=(), source: str = "") -> Shape:
    """Parameter counts from the model built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
    parameters = sum(p.numel() for p in net.parameters())
    targets = [m for name, m in net.named_modules()
               if name.rsplit(".", 1)[-1] in training.LORA_TARGETS
               and isinstance(m, torch.nn.Linear)]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return Shape(source, parameters,
                 {r: sum(r * (m.in_features + m.out_features) for m in targets)
                  for r in lora_ranks},
                 config.num_hidden_layers, config.num_hidden_layers * 2 * kv_heads * head_dim,
                 config.hidden_size, config.intermediate_size, config.vocab_size)


# ---------------------------------------------------------------------------- the tokenizer
def tokenizer_for(model: str):
    """(the model's tokenizer, None) if it is here, else (the default model's, a note)."""
    from transformers import AutoTokenizer
    try:
        source = resolve_model(model)[0]
        return AutoTokenizer.from_pretrained(source, local_files_only=True,
                                             trust_remote_code=False), None
    except Exception:
        source = resolve_model(DEFAULT_MODEL)[0]
        return (AutoTokenizer.from_pretrained(source),
                f"tokens counted with the default model's tokenizer ({model}'s is not here)")


# ---------------------------------------------------------------------------- counting work
def _generation(phase: Phase, tok, calls, temperature: float, n: int, batch_size: int,
                expected) -> None:
    """Count the generation of ``calls`` (each a list of groups for one ``complete_many``
    call, with ``expected`` answer lengths per group and prompt) into ``phase``."""
    t = phase.counts
    for groups, lengths in zip(calls, expected):
        heads, per, cut = generation.batches(tok, groups, temperature, n, batch_size)
        t.add(**generation.prefix_work(heads))
        for picked in cut:
            known = generation.batch_work(picked, per)
            most = max(b for *_, b in picked)
            t.add(**known, generated_tokens=known["budget_tokens"], decode_steps=most,
                  forward_passes=most)
            likely = [min(b, lengths[g][i]) for g, i, _, b in picked]
            phase.expected_generated += per * sum(likely)
            phase.expected_steps += max(likely)
            width = (max(len(heads[g]) for g, *_ in picked)
                     + max(len(row) for _, _, row, _ in picked) + most)
            phase.largest = max(phase.largest, len(picked) * per * width)


def _slick_phases(tok, study, pool, config, table, scale: float = 1.0, stage: str = "slick"
                  ) -> list[Phase]:
    ask = slick.Prompts.build(tok, study, pool, config)
    phases = []
    p_greedy = None if table is None else table.set_index("id")["p_correct_greedy"]
    for mode, questions, temperature, n in (
            ("greedy", ask.everyone(), 0.0, 1),
            ("sample", ask.everyone() if p_greedy is None else ask.undecided(p_greedy),
             config.temperature, config.n_samples)):
        phase = Phase(stage, f"slick {mode}", exact=mode == "greedy" or p_greedy is not None,
                      group=f"slick {mode}")
        for block in ask.blocks_for(questions, n):
            piece = Phase(stage, phase.phase)
            _generation(piece, tok, [ask.prompt_groups(block, questions)], temperature, n,
                        config.batch_size, [[[x for x, k in zip(ask.expected[r], questions[r])
                                              if k] for r, _ in block]])
            phase.absorb(piece)
        if scale != 1.0:                        # the audit's walk-through runs in its stage
            phase.pieces, phase.group = [], ""
        if not phase.exact:
            phase.note = "at most: every question (exact once stage 2 has run)"
        phases.append(phase)
    if scale != 1.0:
        for phase in phases:
            for name, value in phase.counts.as_dict().items():
                setattr(phase.counts, name, math.ceil(value * scale))
            phase.expected_generated = math.ceil(phase.expected_generated * scale)
            phase.expected_steps = math.ceil(phase.expected_steps * scale)
            phase.exact, phase.note = False, "estimate: SliCK on audit_size questions"
    return [Phase(stage, "model load", Tally(model_loads=1)), *phases]


def _stand_in_sets(study: pd.DataFrame, p) -> pd.DataFrame:
    """Sets of the study's sizes drawn from its train questions, for a plan before stage 2:
    the tokens of the real sets are estimated by these."""
    train = finetune_sets.balanced_order(finetune_sets.train_pool(study), 0).assign(
        target=lambda d: d["answers"].str[0])
    sizes = ([("mix", p.d_size)] * len(p.unknown_shares)
             + [x for s in p.mitigation_shares
                for x in (("filtered", p.d_size - round(s * p.d_size)), ("idk", p.d_size))]
             + [("pure", p.d_size if p.pure_size == "auto" else p.pure_size)]
             * len(p.pure_categories))
    return pd.concat([train.head(n).assign(kind=kind, variant=f"{kind}{i}", seed=seed)
                      for seed in p.seeds for i, (kind, n) in enumerate(sizes)],
                     ignore_index=True)


def _answer_lengths(tok, df: pd.DataFrame, column: str, cap: int, template: str) -> list[int]:
    first = df[column] if column == "target" else df[column].str[0]
    return [min(cap, 1 + answer_length(tok, format_question(q, template),
                                       format_target(a, template).rstrip("\n")))
            for q, a in zip(df["question"], first)]


def _finetune_phases(tok, study, p, table) -> list[Phase]:
    held_out = finetune_sets.eval_sets(study if table is None else table)
    sets = _stand_in_sets(study, p) if table is None else finetune.study_sets(table, p)
    train = Phase("finetune", "finetune training", exact=table is not None, group="finetune")
    every = Phase("finetune", "finetune evaluation", exact=table is not None, group="finetune")
    early = Phase("finetune", "finetune early-stop evaluation", exact=False,
                  note="at most: runs whose best dev epoch is not the last", group="finetune")
    if table is None:
        train.note = every.note = ("tokens estimated (the sets are drawn once stage 2 has "
                                   "run); examples, steps and prompts exact")
    longest = 0
    for _seed, _variant, examples, asked, each_epoch in training_runs(sets, held_out):
        data = training.encode(tok, examples["question"].tolist(), examples["target"].tolist(),
                               p.prompt_template)
        steps = math.ceil(len(data) / p.ft_batch_size)
        run = {phase.phase: Phase("finetune", phase.phase) for phase in (train, every, early)}
        run[train.phase].counts.add(trained_examples=len(data) * p.epochs,
                                    trained_tokens=sum(len(ids) for ids, _ in data) * p.epochs,
                                    train_steps=steps * p.epochs)
        longest = max(longest, max(len(ids) for ids, _ in data))
        tested, later = tested_when(asked, each_epoch)
        for phase, frames, times in ((every, [examples, *tested.values()], p.epochs),
                                     (every, list(later.values()), 1 if later else 0),
                                     (early, list(later.values()), 1 if later else 0)):
            frames = [f for f in frames if not f.empty]
            if not frames or not times:
                continue
            questions = [q for f in frames for q in f["question"]]
            lengths = [x for f in frames for x in _answer_lengths(
                tok, f, "target" if "target" in f else "answers", p.max_new_tokens,
                p.prompt_template)]
            once = Phase("", "")
            _generation(once, tok, [evaluation.prompt_groups(questions, p.max_new_tokens,
                                                             p.prompt_template)],
                        0.0, 1, p.eval_batch_size, [[lengths]])
            piece = run[phase.phase]
            piece.largest = max(piece.largest, once.largest)
            for _ in range(times):
                piece.counts.add(**once.counts.as_dict())
                piece.expected_generated += once.expected_generated
                piece.expected_steps += once.expected_steps
        for phase in (train, every, early):
            phase.absorb(run[phase.phase])
    train.largest = longest * p.ft_batch_size
    loads = 1 if p.method == "lora" else sets.groupby(["seed", "variant"]).ngroups
    return [Phase("finetune", "model load", Tally(model_loads=loads)), train, every, early]


# ---------------------------------------------------------------------------------- memory
def _memory(phases: list[Phase], shape: Shape, p, device_type: str) -> None:
    """Each phase's peak device memory, estimated: the weights, plus for training gradients,
    AdamW state, activations and logits of the largest batch, else the largest batch's
    key/value cache and float32 logits."""
    precision = resolve_precision(device_type, p["precision"])
    for phase in phases:
        training = phase.phase == "finetune training"
        full = phase.stage == "finetune" and p["method"] == "full"
        weights, compute = compute_dtypes(device_type, precision, trains_every_weight=full)
        weight_bytes = 2 if str(weights).endswith("bfloat16") else 4
        act = 2 if compute is not None or weight_bytes == 2 else 4
        total = shape.parameters * weight_bytes
        if training:
            tokens = phase.largest
            trained = shape.parameters if full else shape.lora_parameters[p["lora_r"]]
            # fp32 gradients and two AdamW moments, plus the bf16 copies autocast makes
            total += trained * 12 + (shape.parameters * 2 if compute is not None else 0)
            if not full:
                total += trained * 4                        # the float32 adapters
            total += tokens * shape.layers * shape.hidden * 34 * act // 2    # activations
            total += tokens * shape.vocab * 4 * 2                           # logits, grads
        else:
            total += phase.largest * shape.kv_values_per_token * act
            rows = max(1, phase.counts.rows // max(1, phase.counts.batches))
            total += 3 * rows * shape.vocab * 4 * 2 # float32 logits, scores, probabilities
        phase.peak_bytes = total


# ---------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    profile: str
    device: str
    tokenizer_note: str | None
    shape: Shape | None
    phases: list[Phase]
    costs: Costs | None
    gpu_memory_gib: float | None = None
    workers: int = 1

    def table(self) -> pd.DataFrame:
        rows = []
        for ph in self.phases:
            n = ph.counts
            row = {"stage": ph.stage, "phase": ph.phase.removeprefix(f"{ph.stage} "),
                   "exact": ph.exact, "prompts": n.prompts, "rows": n.rows,
                   "prompt_tokens": n.prompt_tokens, "generated_expected": ph.expected_generated,
                   "generated_at_most": n.generated_tokens, "trained_tokens": n.trained_tokens,
                   "train_steps": n.train_steps,
                   "forward_passes_at_most": n.forward_passes + n.train_steps,
                   "peak_gib": round(ph.peak_bytes / GIB, 2) if self.shape else None,
                   "seconds": round(ph.seconds(self.costs), 1) if self.costs else None}
            rows.append(row)
        return pd.DataFrame(rows)

    def total_seconds(self) -> float | None:
        return sum(ph.seconds(self.costs) for ph in self.phases) if self.costs else None

    def wall_seconds(self, workers: int) -> float | None:
        """The model work's wall time with ``workers`` jobs at once (:mod:`knowshift.
        executor`): each pass of SliCK cut into ``workers`` shares of its blocks, the
        fine-tuning runs handed to the first free worker in order, one model load per job;
        the rest as in one process. One worker is the stage's own process (the total)."""
        if not self.costs:
            return None
        if workers <= 1:
            return self.total_seconds()
        c, groups, wall = self.costs, {}, 0.0
        for ph in self.phases:
            if ph.group:
                groups.setdefault(ph.group, []).append(ph)
            elif not (ph.phase == "model load" and ph.stage in ("slick", "finetune")):
                wall += ph.seconds(c)
        for name, phases in groups.items():
            per_piece = [sum(ph.pieces[i].seconds(c) for ph in phases)
                         for i in range(len(phases[0].pieces))]
            if not per_piece:
                continue
            if name.startswith("slick"):
                jobs = [sum(per_piece[i] for i in part) + c.load_s
                        for part in slick.split_evenly(per_piece, workers)]
            else:
                free = [0.0] * workers
                for seconds in per_piece:
                    heapq.heapreplace(free, free[0] + c.load_s + seconds)
                jobs = free
            wall += max(jobs)
        return wall

    def as_dict(self) -> dict:
        return {"profile": self.profile, "device": self.device,
                "tokenizer_note": self.tokenizer_note,
                "shape": asdict(self.shape) if self.shape else None,
                "costs": asdict(self.costs) if self.costs else None,
                "total_seconds": self.total_seconds(), "workers": self.workers,
                "wall_seconds": self.wall_seconds(self.workers),
                "phases": [{**{f.name: getattr(ph, f.name) for f in fields(ph)
                               if f.name not in ("counts", "pieces")},
                            "counts": ph.counts.as_dict(), "pieces": len(ph.pieces),
                            "seconds": ph.seconds(self.costs) if self.costs else None}
                           for ph in self.phases]}

    def report(self) -> str:
        table = self.table()
        lines = [f"knowshift plan: profile {self.profile} on {self.device}"
                 + (f" ({self.shape.parameters / 1e9:.2f}B parameters)" if self.shape else ""),
                 table.to_string(index=False), ""]
        for ph in self.phases:
            if ph.note:
                lines.append(f"  {ph.stage} / {ph.phase.removeprefix(ph.stage + ' ')}: "
                             f"{ph.note}")
        if self.tokenizer_note:
            lines.append(f"  {self.tokenizer_note}")
        if self.shape is None:
            lines.append("  peak memory: the model's config is not here (download the model "
                         "or point model at a local folder)")
        if self.gpu_memory_gib and self.shape:
            over = [f"{ph.stage} / {ph.phase} ({ph.peak_bytes / GIB:.1f} GiB)"
                    for ph in self.phases if ph.peak_bytes > self.gpu_memory_gib * GIB]
            lines.append(f"  over {self.gpu_memory_gib:g} GiB: " + ", ".join(over)
                         + " (lower batch_size / eval_batch_size / ft_batch_size)" if over else
                         f"  every phase fits in {self.gpu_memory_gib:g} GiB (estimates)")
        if self.costs:
            c = self.costs
            lines.append(f"  time: {self.total_seconds() / 60:.1f} min of model work from "
                         f"costs measured on {c.device} ({c.model}, {c.precision}); "
                         "generation at the expected answer lengths; notebooks, analyses and "
                         "the book not counted")
            if self.workers > 1:
                lines.append(f"  wall time on {self.workers} workers: "
                             f"{self.wall_seconds(self.workers) / 60:.1f} min (each SliCK pass "
                             f"in {self.workers} shares of its blocks, the fine-tuning runs "
                             "to the first free worker, one model load per job; workers that "
                             "share one device's cores slow each other, so this holds for "
                             "one device each)")
        else:
            lines.append("  time: no costs for this device; `knowshift plan --measure` on it, "
                         "or `--costs FILE` from a run of `make gpu-check` there")
        return "\n".join(lines)


def make_plan(params: Params, run_dir: str | Path | None = None, device: str | None = None,
              costs: Costs | None = None, gpu_memory_gib: float | None = None,
              profile: str = "", workers: int = 1) -> Plan:
    """The plan of ``params`` (resolved, paths resolved) for a run in ``run_dir`` (its current
    products are read) on ``device`` (default: the parameter's)."""
    from .pipeline import stage_status
    device = device or params["device"]
    device_type = "cuda" if device == "cuda" else "cpu"
    if device == "auto":
        import torch
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    current = set()
    folder = RunFolder(run_dir) if run_dir else None
    if folder is not None and folder.root.is_dir():
        current = {s.stage.name for s in stage_status(params, folder, ["slick"]) if s.current}
    if "facts" in current:
        fact_table, study = folder.read("facts"), folder.read("study")
    else:
        fact_table, study = facts_mod.draw(params.for_stage("facts"))
    table = folder.read("slick") if "slick" in current else None
    tok, note = tokenizer_for(params["model"])
    config = slick.SlickConfig.from_params(params)
    pool = facts_mod.exemplar_pool(fact_table, study, params["exemplar_split"])
    phases = _slick_phases(tok, study, pool, config, table)
    p = params.for_stage("finetune")
    phases += _finetune_phases(tok, study, p, table)
    if params["audit_size"]:
        phases += _slick_phases(tok, study, pool, config, table,
                                scale=min(1.0, params["audit_size"] / len(study)),
                                stage="audit")
    hf_config = model_config(params["model"])
    shape = None
    if hf_config is not None:
        shape = shape_of(hf_config, (params["lora_r"],), params["model"])
        _memory(phases, shape, params, device_type)
    return Plan(profile, device_type, note, shape, phases, costs, gpu_memory_gib, workers)


# ------------------------------------------------------------------------------ measuring
def measure_costs(model: str, device: str, params: Params, rows: tuple[int, int] | None = None
                  ) -> Costs:
    """Per-unit costs of ``model`` on ``device`` at the profile's precision, method and
    batch sizes, timed on random token ids (a few short passes)."""
    cfg = with_precision(training.FinetuneConfig.from_params(params), device)
    start = time.perf_counter()
    net, tok = finetune.load_base(model, device, cfg)
    load_s = time.perf_counter() - start
    rows = rows or (max(1, params["batch_size"] // 8), params["batch_size"])
    return measure_loaded(net, tok, cfg, rows, load_s, model)

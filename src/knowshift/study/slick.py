"""SliCK (Gekhman et al., 2024, section 3): label each question by what the *base* model knows.

P_correct(q, a; M, T) is the share of the model's answers that are right, over ``N_ex`` random
k-shot exemplar sets (drawn from the same relation's ``exemplar_split``: the dev split in the
paper, appendix C) with greedy decoding (T=0), and with ``n_samples`` sampled answers per
exemplar set at T=0.5 (among the ``top_k`` likeliest tokens: 40 in the paper). Categories:

- HighlyKnown: P_correct(T=0) = 1          - MaybeKnown: 0 < P_correct(T=0) < 1
- WeaklyKnown: P_correct(T=0) = 0 and P_correct(T>0) > 0
- Unknown: P_correct(T=0) = 0 and P_correct(T>0) = 0

The first three together are *Known*. The exemplar draw (:func:`draw_exemplar_sets`, from a pool
less the questions asked) serves the audit too; what differs there, the pool an audit draws from
(the file's other half, the examples not sampled, or built-in facts) and the fewer shots a small
file allows, is declared once in :mod:`knowshift.audit.judge` (``ExemplarChoice``). Sampling is only run for questions that greedy decoding
leaves undecided (P_correct(T=0) = 0). Every (relation, exemplar set, decoding) chunk is cached
on disk under a key of model, data, config and code (:func:`cache_key`), so an interrupted run
resumes where it stopped; small chunks run together in fixed blocks (:func:`group_chunks`) so that
they share batches."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.answers import is_correct
from ..core.errors import ParameterError
from ..core.files import fingerprint, remove_temporaries, write_json, write_parquet
from ..core.layout import RunFolder
from ..core.params import check_config, default, from_params
from ..core.progress import Progress
from ..core.provenance import key_of
from ..core.schema import CATEGORIES, KNOWN, format_exemplars, format_question, format_target
from ..engine import executor, work
from ..engine.encoding import answer_length
from ..engine.generation import complete_many
from ..engine.models import (load_model, load_tokenizer, model_identity, resolve_model,
                             with_precision)
from .facts import exemplar_pool


@dataclass(frozen=True)
class SlickConfig:
    """SliCK's settings; each field is the parameter of the same name (``knowshift params``),
    with its declared default."""
    n_exemplar_sets: int = default("n_exemplar_sets")     # N_ex in the paper
    k_shot: int = default("k_shot")
    n_samples: int = default("n_samples")                 # sampled answers per set at T > 0
    temperature: float = default("temperature")
    top_k: int = default("top_k")                         # 0: sample from every token
    max_new_tokens: int = default("max_new_tokens")       # hard cap; see _budgets
    batch_size: int = default("batch_size")
    precision: str = default("precision")
    seed: int = default("seed")

    def __post_init__(self):
        check_config(self)

    @classmethod
    def from_params(cls, params) -> "SlickConfig":
        return from_params(cls, params)


def categorize(p_greedy: float, p_sample: float | None) -> str:
    """The SliCK category from P_correct at T=0 and T>0 (``p_sample`` is only read when
    greedy decoding was never right)."""
    if p_greedy >= 1:
        return "HighlyKnown"
    if p_greedy > 0:
        return "MaybeKnown"
    return "WeaklyKnown" if (p_sample or 0) > 0 else "Unknown"


def draw_exemplar_sets(pool: pd.DataFrame, relation: str, n_sets: int, k: int,
                       seed: int) -> list[pd.DataFrame]:
    """``n_sets`` random k-shot exemplar sets for one relation, fixed by ``seed``."""
    rows = pool[pool["relation"] == relation].sort_values("id")
    if len(rows) < k:
        raise ParameterError(f"relation {relation} has only {len(rows)} questions to draw "
                             f"exemplars from outside the study set; {k}-shot exemplars need "
                             f"at least {k} (k_shot; for a study, also exemplar_split)")
    rng = np.random.default_rng([seed, zlib.crc32(relation.encode())])
    return [rows.iloc[rng.choice(len(rows), size=k, replace=False)] for _ in range(n_sets)]


# Tokens a SliCK answer may take beyond its longest accepted answer and the newline that ends it.
BUDGET_MARGIN = 2


def _answer_tokens(tok, questions: pd.Series, answers: pd.Series) -> list[int]:
    """Per question, the tokens its longest accepted answer takes written after the question's
    prompt, with the newline that ends it: what a right answer costs."""
    return [1 + max(answer_length(tok, format_question(q), format_target(a).rstrip("\n"))
                    for a in ans) for q, ans in zip(questions, answers)]


def cache_key(identity: str, config: SlickConfig, study: pd.DataFrame, pool: pd.DataFrame
              ) -> dict:
    """What a chunk's answers depend on: the model (its ``identity``,
    :func:`knowshift.engine.models.model_identity`), the config, the questions and exemplars (every
    field a prompt or a score reads), and the code that computes them with its libraries
    (``core.provenance.KEYS["slick-chunk"]``)."""
    return {"model": identity, "config": asdict(config),
            "study": fingerprint(study[["id", "question", "answers"]].to_dict("list")),
            "pool": fingerprint(pool[["id", "relation", "question", "answer"]].to_dict("list")),
            "code": key_of("slick-chunk")}


class SlickCache:
    """One folder per :func:`cache_key`; one parquet per finished chunk."""

    def __init__(self, root: Path, key_parts: dict):
        self.dir = Path(root) / fingerprint(key_parts)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(key_parts | {"key": self.dir.name}, self.dir / "key.json")

    def path(self, mode: str, relation: str, index: int) -> Path:
        return self.dir / mode / relation / f"set{index:03d}.parquet"

    def has(self, mode: str, chunks: list[tuple[str, int]]) -> bool:
        return all(self.path(mode, r, i).is_file() for r, i in chunks)

    def get_or_run(self, mode: str, chunks: list[tuple[str, int]], run) -> list[pd.DataFrame]:
        """The tables of ``chunks`` (relation, exemplar set), read if all are on disk, else
        computed together by ``run()`` (the same tables: a block is deterministic) and the
        missing ones written, one file per chunk; finished files are left as they are."""
        paths = [self.path(mode, r, i) for r, i in chunks]
        if not all(p.is_file() for p in paths):
            for df, path in zip(run(), paths):
                if not path.is_file():
                    write_parquet(df, path)
        return [pd.read_parquet(p) for p in paths]


def group_chunks(chunks: list[tuple[str, int]], rows: dict[str, int], size: int
           ) -> list[list[tuple[str, int]]]:
    """Consecutive chunks grouped while a group fits in ``size`` rows (one batch), so that small
    relations share a batch and a block leaves no small tail batch; a chunk larger than a batch
    stands alone. Fixed by the chunk list alone: a resumed run batches alike (and no answer
    depends on the cut: :mod:`knowshift.engine.generation`)."""
    out, current, n = [], [], 0
    for chunk in chunks:
        if current and n + rows[chunk[0]] > size:
            out.append(current)
            current, n = [], 0
        current.append(chunk)
        n += rows[chunk[0]]
    return out + ([current] if current else [])


@dataclass
class Prompts:
    """The k-shot prompts SliCK asks about ``study`` (shared by the labelling and by
    ``knowshift plan``): per relation its exemplar sets, questions, answer budgets (a right
    answer's tokens and :data:`BUDGET_MARGIN`, at most ``max_new_tokens``) and the tokens a
    right answer takes (``expected``, what the plan counts a pass at)."""
    config: SlickConfig
    pool: pd.DataFrame                      # the exemplars' pool, less the study questions
    relations: list[str]
    sets: dict[str, list[pd.DataFrame]]
    groups: dict[str, pd.DataFrame]
    budget: dict[str, list[int]]
    expected: dict[str, list[int]]

    @classmethod
    def build(cls, tok, study: pd.DataFrame, pool: pd.DataFrame, config: SlickConfig
              ) -> "Prompts":
        """Exemplars come from ``pool`` less the study questions (a question is never its
        own exemplar)."""
        pool = pool[~pool["id"].isin(study["id"])]
        relations = sorted(study["relation"].unique())
        groups = {r: study[study["relation"] == r] for r in relations}
        cap = config.max_new_tokens
        right = {r: _answer_tokens(tok, g["question"], g["answers"]) for r, g in groups.items()}
        return cls(config, pool, relations,
                   {r: draw_exemplar_sets(pool, r, config.n_exemplar_sets, config.k_shot,
                                          config.seed) for r in relations},
                   groups,
                   {r: [min(cap, n + BUDGET_MARGIN) for n in right[r]] for r in relations},
                   {r: [min(cap, n) for n in right[r]] for r in relations})

    def everyone(self) -> dict[str, np.ndarray]:
        return {r: np.ones(len(g), dtype=bool) for r, g in self.groups.items()}

    def undecided(self, p_greedy: pd.Series) -> dict[str, np.ndarray]:
        """Per relation, a mask of the questions greedy decoding never answered right (the
        ones the sampled pass asks)."""
        undecided = set(p_greedy[p_greedy == 0].index)
        return {r: g["id"].isin(undecided).to_numpy() for r, g in self.groups.items()}

    def blocks_for(self, questions: dict[str, np.ndarray], n: int
                   ) -> list[list[tuple[str, int]]]:
        """The chunks (relation, exemplar set) of the questions ``questions`` selects, in the
        blocks that run together (:func:`group_chunks`), ``n`` answers per prompt."""
        chunks = [(r, i) for r in self.relations if questions[r].any()
                  for i in range(self.config.n_exemplar_sets)]
        rows = {r: int(questions[r].sum()) * n for r in self.relations}
        return group_chunks(chunks, rows, self.config.batch_size)

    def rows(self, block, questions: dict[str, np.ndarray], n: int) -> int:
        """The answers one block generates: its chunks' questions, ``n`` per prompt."""
        return sum(int(questions[r].sum()) * n for r, _ in block)

    def prompt_groups(self, block, questions: dict[str, np.ndarray]) -> list[tuple]:
        """The groups ``(prefix, suffixes, budgets, seed)`` of one block, for
        :func:`knowshift.engine.generation.complete_many`."""
        prompts = []
        for r, i in block:
            exemplars, keep = self.sets[r][i], questions[r]
            prompts.append((format_exemplars(exemplars["question"], exemplars["answer"]),
                            [format_question(q) for q in self.groups[r]["question"][keep]],
                            [b for b, k in zip(self.budget[r], keep) if k],
                            self.config.seed * 100_003 + i * 1_009 + zlib.crc32(r.encode())))
        return prompts


@dataclass(frozen=True)
class Jobs:
    """Where SliCK's prompt blocks run when not in the stage's process: the executor, and the
    model and device each job loads (:mod:`knowshift.engine.executor`)."""
    where: executor.Executor
    model: str
    device: str
    folder: Path                     # the jobs' logs and record


def answer_chunks(model, tok, ask: Prompts, block, questions: dict[str, np.ndarray],
                 temperature: float, n: int) -> list[pd.DataFrame]:
    """Answers for every chunk of ``block``, the questions of a relation given by
    ``questions[relation]`` (a mask over its rows), in shared batches."""
    config, groups = ask.config, ask.groups
    answers = complete_many(model, tok, ask.prompt_groups(block, questions), temperature=temperature,
                            num_samples=n, top_k=config.top_k, batch_size=config.batch_size)
    return [pd.DataFrame({"id": groups[r]["id"][questions[r]].tolist(), "predictions": preds,
                          "n_correct": [sum(is_correct(p, a) for p in ps) for ps, a in
                                        zip(preds, groups[r]["answers"][questions[r]])]})
            for (r, _), preds in zip(block, answers)]


def answer_job(model_name: str, device: str, config: SlickConfig, study: pd.DataFrame,
                  pool: pd.DataFrame, cache_dir: str, key: dict, mode: str, todo: list,
                  questions: dict[str, np.ndarray], temperature: float, n: int, tick) -> dict:
    """An executor's job: load the model, answer the blocks ``todo`` into the cache (one file
    per chunk, as the stage would), ``tick(rows)`` after each; returns the work counted."""
    with work.recording() as done:
        net, tok = load_model(model_name, device, config.precision)
        ask = Prompts.build(tok, study, pool, config)
        cache = SlickCache(cache_dir, key)
        with work.phase(f"slick {mode}"):
            for block in todo:
                cache.get_or_run(mode, block, lambda block=block: answer_chunks(
                    net, tok, ask, block, questions, temperature, n))
                tick(ask.rows(block, questions, n))
    return work.counts_of(done)


def split_evenly(sizes: list[int], parts: int) -> list[list[int]]:
    """Indices of ``sizes`` cut into at most ``parts`` consecutive runs of about equal sum
    (the blocks each job answers)."""
    total, out, current, acc = sum(sizes), [], [], 0
    for i, size in enumerate(sizes):
        current.append(i)
        acc += size
        if acc >= total * (len(out) + 1) / parts and len(out) < parts - 1:
            out.append(current)
            current = []
    return out + ([current] if current else [])


def label_questions(model, tok, study: pd.DataFrame, pool: pd.DataFrame,
                    config: SlickConfig, cache_dir: str | Path,
                    progress: bool = True, progress_file: str | Path | None = None,
                    jobs: Jobs | None = None) -> pd.DataFrame:
    """Run SliCK on every question of ``study``; exemplars come from ``pool`` (the facts they
    may be drawn from; never a study question). Returns ``study`` with P_correct, category and
    predictions. Progress (answers generated, by chunk) goes to a bar and to ``progress_file``
    (:mod:`knowshift.core.progress`). With ``jobs`` on an executor other than local, the blocks not
    yet cached are answered by its jobs (``model`` may then be None: the stage loads only the
    tokenizer) and read back from the cache."""
    if study.empty:
        raise ParameterError("the study set is empty: nothing to label")
    farmed = jobs is not None and not jobs.where.local
    identity = resolve_model(jobs.model)[1] if model is None else model_identity(model)
    ask = Prompts.build(tok, study, pool, config)
    key = cache_key(identity, config, study, ask.pool)
    cache = SlickCache(cache_dir, key)
    remove_temporaries(cache.dir)               # what a killed run left half-written

    def run_mode(mode, questions, temperature, n, desc):
        with work.phase(f"slick {mode}"):
            return _run_mode(mode, questions, temperature, n, desc)

    def _run_mode(mode, questions, temperature, n, desc):
        todo = ask.blocks_for(questions, n)
        n_chunks = sum(len(block) for block in todo)
        size = [ask.rows(block, questions, n) for block in todo]
        cached = [cache.has(mode, block) for block in todo]
        tables, done = [], sum(len(b) for b, c in zip(todo, cached) if c)
        with Progress(progress_file, sum(size), desc, "answers", enabled=progress,
                      initial=sum(n for n, c in zip(size, cached) if c)) as bar:
            missing = [i for i, c in enumerate(cached) if not c]
            if farmed and missing:
                parts = split_evenly([size[i] for i in missing], jobs.where.jobs)
                pieces = [executor.Piece(
                    f"{mode} blocks {missing[part[0]] + 1}-{missing[part[-1]] + 1}",
                    answer_job, (jobs.model, jobs.device, config, study, ask.pool,
                                    str(cache_dir), key, mode, [todo[missing[i]] for i in part],
                                    questions, temperature, n),
                    sum(size[missing[i]] for i in part)) for part in parts]
                for ledger in executor.run_pieces(pieces, jobs.where, jobs.folder / mode, bar,
                                                  scratch=[cache.dir]):
                    work.add(ledger)
            for block, n_rows, was_cached in zip(todo, size, cached):
                tables += cache.get_or_run(mode, block, lambda: answer_chunks(
                    model, tok, ask, block, questions, temperature, n))
                if not was_cached and not farmed:
                    done += len(block)
                    bar.update(n_rows, f"chunk {done}/{n_chunks} (relation x exemplar "
                               f"set), last {block[-1][0]}")
        return pd.concat(tables) if tables else None

    greedy = run_mode("greedy", ask.everyone(), 0.0, 1, "SliCK greedy (T=0)")
    p_greedy = greedy.groupby("id")["n_correct"].mean()
    sampled = run_mode("sample", ask.undecided(p_greedy), config.temperature, config.n_samples,
                       f"SliCK sampling (T={config.temperature})")
    if sampled is not None:
        p_sample = sampled.groupby("id")["n_correct"].sum() / (
            config.n_samples * config.n_exemplar_sets)
    else:
        p_sample = pd.Series(dtype=float)

    out = study.copy()
    out["p_correct_greedy"] = out["id"].map(p_greedy).astype(float)
    out["p_correct_sample"] = out["id"].map(p_sample).astype(float)
    out["category"] = [categorize(g, s) for g, s in
                       zip(out["p_correct_greedy"], out["p_correct_sample"].fillna(0))]
    out["category"] = pd.Categorical(out["category"], categories=CATEGORIES)
    out["known"] = out["category"].isin(KNOWN)
    out["greedy_predictions"] = out["id"].map(
        greedy.groupby("id")["predictions"].agg(lambda s: [p[0] for p in s]))
    samples = ({} if sampled is None else
               sampled.groupby("id")["predictions"].agg(lambda s: [p for ps in s for p in ps]))
    out["sample_predictions"] = [list(samples.get(i, [])) for i in out["id"]]
    return out.reset_index(drop=True)


def run_stage(run_dir: str | Path, params, progress: bool = True) -> pd.DataFrame:
    """Stage 2: label the study set of stage 1 with the base model and write the product
    ``slick``. Finished chunks in the stage's cache are reused, so a rerun after an
    interruption only does the rest."""
    p = params.for_stage("slick")
    run = RunFolder(run_dir)
    study, facts = run.read("study"), run.read("facts")
    where = executor.current()
    config = with_precision(SlickConfig.from_params(p), where.device_for(p.device))
    pool = exemplar_pool(facts, study, p.exemplar_split)
    with work.recording() as done:
        if where.local:
            net, tok = load_model(p.model, p.device, config.precision)
        else:                                   # the jobs load the model
            net, tok = None, load_tokenizer(p.model)
        table = label_questions(net, tok, study, pool, config, run.cache("slick"),
                                progress=progress, progress_file=run.progress("slick"),
                                jobs=Jobs(where, p.model, p.device, run.jobs("slick")))
    work.write(done, run.work("slick"))
    write_parquet(table, run.path("slick"))
    return table

"""Every parameter of the study, declared once: its default, type, allowed values, meaning and
the stages that read it.

The defaults *are* the workshop profile (the README's CPU run). A profile (a YAML file in
``knowshift/profiles`` or anywhere) holds only what differs from them, the way nanoGPT's
``config/*.py`` files override ``train.py``'s globals; command-line overrides (``-p name=value``)
and a notebook's ``overrides`` come last. Unknown names and wrong types or values are refused
with one message naming the parameter. The stage configs (:class:`knowshift.study.slick.SlickConfig`,
:class:`knowshift.engine.training.FinetuneConfig`), ``knowshift params``, the pipeline's stamps and the
notebooks all read this table."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ParameterError
from .layout import REPOSITORY
from .schema import CATEGORIES, NATURAL, QA_TEMPLATE, share_clash, template_problem


# ----------------------------------------------------------------------------------- rules
def at_least(low: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def between(low: float, high: float) -> Callable[[Any], str | None]:
    """Open at ``low``, closed at ``high``."""
    return lambda v: None if low < v <= high else f"must be in ({low:g}, {high:g}]"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def share_list(v) -> str | None:
    if not v:
        return "must list at least one share"
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1
               for x in v):
        return "must be a list of shares in [0, 1]"
    return share_clash(v)


def names(choices: tuple[str, ...] | None = None) -> Callable[[Any], str | None]:
    def rule(v):
        if v is None:
            return None
        if not all(isinstance(x, str) and x for x in v):
            return "must be a list of names"
        bad = [x for x in v if choices is not None and x not in choices]
        return f"has unknown name(s) {bad}; use {list(choices)}" if bad else None
    return rule


def seed_list(v) -> str | None:
    if not v or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a non-empty list of seeds (integers >= 0)"
    return None if len(set(v)) == len(v) else "must not repeat a seed"


def size_or_auto(v) -> str | None:
    if v == "auto":
        return None
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return None
    return "must be a whole number >= 0 or 'auto'"


def non_empty(v) -> str | None:
    return None if v.strip() else "must not be empty"


# --------------------------------------------------------------------------- path values
def names_model_folder(value: str) -> bool:
    """Whether a ``model`` value names a local folder rather than the embedded model or a hub
    id (``org/name``): it starts like a path, has more than one ``/``, or exists."""
    if value == "default":
        return False
    return (value.startswith((".", "/", "~")) or value.strip("/").count("/") > 1
            or (os.sep != "/" and os.sep in value) or Path(value).expanduser().exists())


def names_fact_file(value: str) -> bool:
    return value != "offline"


# Set by the pipeline for the stage kernels: the directory ``knowshift run`` was called from,
# so that pages show a path as it was typed (display only: the stages get resolved paths).
CALLER_DIR_ENV = "KNOWSHIFT_CALLER_DIR"


def shown_path(value: str, home: Path | None = None) -> str:
    """A resolved path as a page shows it, without the machine's folders: relative to the
    directory the run was started from (``$KNOWSHIFT_CALLER_DIR``, else the working directory)
    or to the repository when inside one of them, else under ``~`` when inside the home folder,
    else by its name alone."""
    path, repo = Path(value), REPOSITORY
    home = home or Path.home()
    caller = Path(os.environ.get(CALLER_DIR_ENV) or os.getcwd())
    bases = ([(caller, "")] if caller.parent != caller else []) + [(repo, ""), (home, "~/")]
    for base, shown in bases:
        if path.is_relative_to(base):
            rest = path.relative_to(base).as_posix()
            return shown + rest if rest != "." else (shown.rstrip("/") or ".")
    return f".../{path.name}" if path.is_absolute() else value


def names_path(name: str, value: Any) -> bool:
    """Whether ``value`` of parameter ``name`` names a file or folder (``Param.names_path``)."""
    test = SCHEMA[name].names_path if name in SCHEMA else None
    return isinstance(value, str) and bool(test and test(value))


def shown_value(name: str, value: Any) -> Any:
    """A parameter's value as a page shows it: a file or folder by :func:`shown_path`."""
    return shown_path(value) if names_path(name, value) else value


@dataclass(frozen=True)
class Param:
    default: Any
    types: tuple[type, ...]
    help: str
    stages: tuple[str, ...]
    rule: Callable[[Any], str | None] | None = None
    # for parameters that may name a file or folder: whether a value does (it is then resolved
    # against the caller's directory before any stage runs, see Params.with_paths_resolved)
    names_path: Callable[[Any], bool] | None = None


DEFAULT_PROFILE = "workshop"      # the profile whose values are the defaults below
MODEL_STAGES = ("slick", "finetune", "audit")
SLICK_STAGES = ("slick", "audit")
NONE = type(None)
PRECISIONS = ("auto", "fp32", "bf16")

SCHEMA: dict[str, Param] = {
    # the model and the facts
    "model": Param("default", (str,), "'default' (embedded SmolLM2-135M), a local folder of "
                   "safetensors, or a hub id", MODEL_STAGES, non_empty, names_model_folder),
    "device": Param("auto", (str,), "'auto' (CUDA if present, else CPU), 'cpu' or 'cuda'",
                    MODEL_STAGES, one_of("auto", "cpu", "cuda")),
    # bf16 is faster where native and moves some SliCK categories, so the sets drawn from
    # them, and verdicts (docs/precision.md; measured in benchmarks/README.md)
    "precision": Param("auto", (str,), "'auto' (bf16 where the device computes it natively, "
                       "else fp32), 'fp32', or 'bf16' (bf16 weights on CUDA; bf16 autocast on "
                       "a CPU)", MODEL_STAGES, one_of(*PRECISIONS)),
    "facts": Param("offline", (str,), "'offline', an EntityQuestions folder, or a fact table "
                   "(.parquet)", ("facts",), non_empty, names_fact_file),
    # Relations the 135M model partly knows (places, capitals, film languages and countries,
    # teams), so that the test set holds enough questions it knows: the paper's harm is lost
    # accuracy on those. Film directors (P57), birthplaces (P19) and places of death (P20) were
    # dropped: the model knew none of them (SliCK of 57 questions each, book: method chapter).
    # The last four are out-of-distribution.
    "relations": Param(("P17", "P131", "P36", "P364", "P495", "P54", "P30", "P413", "P136",
                        "P1412"), (list, tuple, NONE),
                       "relation ids to keep (null: all)", ("facts",), names()),
    "n_train": Param(320, (int,), "in-distribution train questions in the study set",
                     ("facts",), at_least(0)),
    "n_dev": Param(40, (int,), "in-distribution dev questions in the study set", ("facts",),
                   at_least(0)),
    "n_test": Param(96, (int,), "in-distribution test questions in the study set", ("facts",),
                    at_least(0)),
    "n_ood": Param(60, (int,), "out-of-distribution test questions in the study set",
                   ("facts",), at_least(0)),
    "seed": Param(0, (int,), "seed of the study set, SliCK's exemplars and samples, and the "
                  "audit", ("facts", "slick", "audit"), at_least(0)),
    # Each fine-tuning seed is one replicate of the whole fine-tuning study: it draws the sets
    # from the SliCK table and the training order. Intervals are taken across seeds (book:
    # method chapter); three is the fewest that gives one.
    "seeds": Param((0, 1, 2), (list, tuple), "fine-tuning seeds: every variant is trained "
                   "once per seed", ("finetune",), seed_list),
    # SliCK: fewer exemplar sets and samples than the paper (10 and 16) to fit a CPU; the
    # categories are the same, P_correct is coarser.
    "n_exemplar_sets": Param(4, (int,), "N_ex: random k-shot exemplar sets per question",
                             SLICK_STAGES, at_least(1)),
    "k_shot": Param(4, (int,), "exemplars per prompt", SLICK_STAGES, at_least(1)),
    "n_samples": Param(4, (int,), "sampled answers per exemplar set at T > 0", SLICK_STAGES,
                       at_least(1)),
    "temperature": Param(0.5, (float,), "sampling temperature for P_correct(T > 0)",
                         SLICK_STAGES, between(0, 2)),
    # The paper samples among the 40 likeliest tokens (appendix C); at T = 0.5 the tail beyond
    # them holds little mass, and 0 keeps the workshop's categories as they were measured.
    "top_k": Param(0, (int,), "sample P_correct(T > 0) among the k likeliest tokens (0: all; "
                   "the paper: 40)", SLICK_STAGES, at_least(0)),
    # The paper draws exemplars from the dev split (appendix C). The offline set's dev split is a
    # tenth of its subjects and the study set takes its dev questions from it, so the workshop
    # draws from the (seven times larger) train split, as it always has.
    "exemplar_split": Param("train", (str,), "split the k-shot exemplars are drawn from "
                            "('train' or 'dev'; the paper: dev)", ("slick",),
                            one_of("train", "dev")),
    "max_new_tokens": Param(16, (int,), "hard cap on generated answer tokens",
                            MODEL_STAGES, at_least(1)),
    "batch_size": Param(48, (int,), "rows (prompts x samples) per generation batch in SliCK",
                        SLICK_STAGES, at_least(1)),
    # fine-tuning: |D| = 48, full fine-tuning, 6 epochs: the slowest mix (100 % Unknown) was
    # measured fitting its set by epoch 5 at this learning rate, so epochs 5-6 are a plateau
    # and CONVERGENCE (the last epoch) is read after the set is fitted.
    "d_size": Param(48, (int,), "|D|: examples in each Known/Unknown mix", ("finetune",),
                    at_least(1)),
    # three mixes (the paper has five): each mix costs a sixth of the fine-tuning stage, and
    # the linear model still gets 3 mixes x 6 epochs x 3 seeds = 54 points in 9 runs
    "unknown_shares": Param((0, 0.5, 1.0), (list, tuple),
                            "shares of Unknown examples to sweep, e.g. [0, 0.5, 1]",
                            ("finetune",), share_list),
    # 'auto' is the paper's rule (section 5): per relation, the count of its smallest category
    # among pure_categories, summed over relations (6,142 there, equal to its |D|)
    "pure_size": Param(16, (int, str), "examples in each category-pure set, or 'auto': per "
                       "relation the smallest asked category's count, summed, at most d_size",
                       ("finetune",), size_or_auto),
    "pure_categories": Param((*CATEGORIES, NATURAL), (list, tuple),
                             "category-pure sets to train (SliCK categories or Natural)",
                             ("finetune",), names((*CATEGORIES, NATURAL))),
    "mitigation_shares": Param((0.5,), (list, tuple), "mixes to repeat with Unknown filtered "
                               "out and relabelled IDK", ("finetune",),
                               lambda v: None if not v else share_list(v)),
    # SliCK keeps its k-shot "Q:/A:" prompts whatever this is (it probes the base model)
    "prompt_template": Param(QA_TEMPLATE, (str,), "fine-tuning and test example, {question} "
                             "replaced (the paper's: 'Answer the following question. "
                             "{question}\\n')", ("finetune",), template_problem),
    "method": Param("full", (str,), "'full' fine-tuning or 'lora'", ("finetune",),
                    one_of("full", "lora")),
    "learning_rate": Param(1e-4, (float,), "AdamW learning rate", ("finetune",),
                           lambda v: None if 0 < v < 1 else "must be in (0, 1)"),
    "weight_decay": Param(0.0, (float,), "AdamW weight decay", ("finetune",), at_least(0)),
    "epochs": Param(6, (int,), "fine-tuning epochs (evaluated after each)", ("finetune",),
                    at_least(1)),
    "ft_batch_size": Param(8, (int,), "fine-tuning batch size", ("finetune",), at_least(1)),
    "lora_r": Param(16, (int,), "LoRA rank (method: lora; alpha is 2 x rank)", ("finetune",),
                    at_least(1)),
    "eval_batch_size": Param(64, (int,), "rows per generation batch when evaluating fine-tuned "
                             "models", ("finetune",), at_least(1)),
    # stage 8: audit a held-out slice of the fact set, as a user would audit their own file
    "audit_size": Param(60, (int,), "held-out questions the audit walk-through (stage 8) "
                        "audits", ("audit",), at_least(0)),
}


def default(name: str) -> Any:
    """The declared default of parameter ``name`` (for stage config dataclasses)."""
    return SCHEMA[name].default


def check(name: str, value: Any) -> Any:
    """``value`` as parameter ``name`` holds it (lists as tuples, ints as floats where a float
    is asked for); raises :class:`ParameterError` naming the parameter if it does not fit."""
    if name not in SCHEMA:
        raise ParameterError(f"unknown parameter {name!r}; known: {sorted(SCHEMA)}")
    p = SCHEMA[name]
    if float in p.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, p.types):
        wanted = " or ".join("null" if t is NONE else t.__name__ for t in p.types)
        raise ParameterError(f"parameter {name!r} ({p.help}) must be {wanted}, got "
                             f"{type(value).__name__} {value!r}")
    if isinstance(value, list):
        value = tuple(value)
    problem = p.rule(value) if p.rule else None
    if problem:
        raise ParameterError(f"parameter {name!r} {problem}, got {_listed(value)!r}")
    return value


def _listed(value: Any) -> Any:
    """Tuples back to lists, for YAML, JSON and papermill."""
    return list(value) if isinstance(value, tuple) else value


class Params(Mapping):
    """A complete, checked set of parameters: the defaults, then ``values`` over them.
    Read as a mapping (``params["d_size"]``) or by attribute (``params.d_size``)."""

    def __init__(self, values: Mapping[str, Any] | None = None, _names=None):
        values = dict(values or {})
        unknown = sorted(set(values) - set(SCHEMA))
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; known: {sorted(SCHEMA)}")
        self._names = tuple(SCHEMA if _names is None else _names)
        self._values = {n: check(n, values[n]) if n in values else SCHEMA[n].default
                        for n in self._names}

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            if name in SCHEMA:
                raise ParameterError(f"parameter {name!r} is not declared for this stage "
                                     "(add the stage to its entry in knowshift.core.params.SCHEMA)")
            raise KeyError(name)
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name) -> bool:
        return name in self._values

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self.differences()})"

    def for_stage(self, stage: str) -> "Params":
        """Only the parameters ``stage`` declares it reads: reading another one is an error, so
        a stage cannot depend on a value its stamp does not record."""
        return Params(self._values, _names=[n for n in self._names if stage in SCHEMA[n].stages])

    def plain(self) -> dict[str, Any]:
        """Every value as YAML/JSON holds it (lists, not tuples)."""
        return {n: _listed(v) for n, v in self._values.items()}

    def rows(self) -> list[dict[str, Any]]:
        """One row per parameter: its value (a resolved path as :func:`shown_path` shows it),
        its default and what it means (for notebooks)."""
        return [{"parameter": n, "value": shown_value(n, _listed(v)),
                 "default": _listed(SCHEMA[n].default), "meaning": SCHEMA[n].help}
                for n, v in self._values.items()]

    def with_paths_resolved(self, base: str | Path) -> "Params":
        """These parameters with every value that names a file or folder made absolute,
        read against ``base`` (the caller's directory): the stages run elsewhere (their
        kernels in ``notebooks/``) and must find what the user meant."""
        values = dict(self._values)
        for name in self._names:
            if names_path(name, values[name]):
                path = Path(values[name]).expanduser()
                values[name] = str(path if path.is_absolute() else (Path(base) / path).resolve())
        return Params(values, _names=self._names)

    def path_names(self) -> list[str]:
        """The parameters whose value names a file or folder."""
        return [n for n in self._names if names_path(n, self._values[n])]

    def differences(self) -> dict[str, Any]:
        """The values that differ from the defaults."""
        return {n: _listed(v) for n, v in self._values.items() if v != SCHEMA[n].default}


def from_params(cls, params: Mapping[str, Any]):
    """A stage config dataclass whose fields are parameters, filled from ``params``."""
    return cls(**{f.name: params[f.name] for f in fields(cls)})


def check_config(config) -> None:
    """Check every field of a stage config dataclass against the schema (each field is a
    parameter of the same name)."""
    for f in fields(config):         # frozen: store the checked form (e.g. 1 -> 1.0)
        object.__setattr__(config, f.name, check(f.name, getattr(config, f.name)))


# --------------------------------------------------------------------------------- profiles
def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("knowshift.profiles").iterdir()
                  if p.name.endswith(".yaml"))


EXTENDS = "extends"      # a profile's key naming the profile it starts from (not a parameter)


def read_profile(name_or_path: str | Path, _within: tuple[str, ...] = ()) -> dict[str, Any]:
    """A profile's entries (its differences from the defaults, or from the profile its
    ``extends`` names), checked: by name (``smoke``, ``workshop``, ``paper``) or by path to a
    YAML file."""
    text_name = str(name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ParameterError(f"profile file {text_name!r} does not exist")
        text = path.read_text()
    elif text_name in profile_names():
        text = resources.files("knowshift.profiles").joinpath(f"{text_name}.yaml").read_text()
    else:
        raise ParameterError(f"unknown profile {text_name!r}; known: {profile_names()} "
                             "or a path to a .yaml file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"profile {text_name!r} is not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ParameterError(f"profile {text_name!r} must be a mapping of parameters")
    base = data.pop(EXTENDS, None)
    own = {k: check(k, v) for k, v in data.items()}
    if base is None:
        return own
    if not isinstance(base, str) or base in (*_within, text_name):
        raise ParameterError(f"profile {text_name!r}: '{EXTENDS}' must name another profile "
                             f"(not {base!r}: {' -> '.join((*_within, text_name, str(base)))})")
    return read_profile(base, (*_within, text_name)) | own


def resolve(profile: str | Path = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None
            ) -> Params:
    """The defaults, then ``profile``'s differences, then ``overrides``: the parameters of a
    run, checked."""
    return Params(read_profile(profile) | dict(overrides or {}))


def parse_override(text: str) -> tuple[str, Any]:
    """``name=value`` from the command line; the value is read as YAML (``5``, ``null``,
    ``[P17, P36]``) and then checked. Text parameters keep the text as typed."""
    if "=" not in text:
        raise ParameterError(f"override {text!r} must look like name=value")
    name, raw = text.split("=", 1)
    if name in SCHEMA and SCHEMA[name].types == (str,):
        return name, check(name, raw)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ParameterError(f"override {text!r}: cannot read value ({err})") from err
    return name, check(name, value)


def describe() -> list[tuple[str, str, str, str]]:
    """(name, type, default, meaning) per parameter, for ``knowshift params``."""
    out = []
    for name, p in SCHEMA.items():
        types = "/".join("null" if t is NONE else t.__name__ for t in p.types if t is not tuple)
        out.append((name, types, yaml.safe_dump(_listed(p.default), default_flow_style=True)
                    .strip().removesuffix("...").strip(), p.help))
    return out

"""Profiles (YAML recipe files in ``knowshift/profiles``) and parameter checking.

Every stage parameter has one declared type here; a profile, a CLI override or a notebook
parameter of the wrong type is rejected with one message naming it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ParameterError

# name -> (accepted types, description). None in the types means the value may be null.
PARAMETERS: dict[str, tuple[tuple, str]] = {
    "model": ((str,), "'default', a local folder of safetensors, or a hub id"),
    "device": ((str, type(None)), "'auto' (CUDA if present, else CPU), 'cpu' or 'cuda'"),
    "facts": ((str,), "'offline', an EntityQuestions folder, or a fact table (.parquet)"),
    "relations": ((list, type(None)), "relation ids to keep (null: all)"),
    "n_train": ((int,), "in-distribution train questions in the study set"),
    "n_dev": ((int,), "in-distribution dev questions in the study set"),
    "n_test": ((int,), "in-distribution test questions in the study set"),
    "n_ood": ((int,), "out-of-distribution test questions in the study set"),
    "seed": ((int,), "seed of every random choice"),
    "n_exemplar_sets": ((int,), "N_ex: random k-shot exemplar sets per question"),
    "k_shot": ((int,), "exemplars per prompt"),
    "n_samples": ((int,), "sampled answers per exemplar set at T > 0"),
    "temperature": ((float, int), "sampling temperature for P_correct(T > 0)"),
    "max_new_tokens": ((int,), "hard cap on generated answer tokens"),
    "batch_size": ((int,), "rows per generate call"),
    "d_size": ((int,), "|D|: examples in each Known/Unknown mix"),
    "unknown_shares": ((list,), "shares of Unknown examples to sweep, e.g. [0, 0.5, 1]"),
    "pure_size": ((int,), "examples in each category-pure set"),
    "pure_categories": ((list,), "category-pure sets to train (SliCK categories or Natural)"),
    "mitigation_shares": ((list,), "mixes to repeat with Unknown filtered out and relabelled IDK"),
    "method": ((str,), "'full' fine-tuning or 'lora'"),
    "learning_rate": ((float,), "AdamW learning rate"),
    "epochs": ((int,), "fine-tuning epochs (evaluated after each)"),
    "ft_batch_size": ((int,), "fine-tuning batch size"),
    "lora_r": ((int,), "LoRA rank (method: lora)"),
    "audit_size": ((int,), "held-out questions the audit walk-through (stage 8) audits"),
}
NON_NEGATIVE = {"n_train", "n_dev", "n_test", "n_ood", "seed", "pure_size", "audit_size"}
LISTS_OF_NUMBERS = {"unknown_shares", "mitigation_shares"}


def check(name: str, value: Any) -> Any:
    """Return ``value`` if it fits parameter ``name``; raise :class:`ParameterError` if not."""
    if name not in PARAMETERS:
        raise ParameterError(f"unknown parameter {name!r}; known: {sorted(PARAMETERS)}")
    types, what = PARAMETERS[name]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ParameterError(f"parameter {name!r} ({what}) must be "
                             f"{' or '.join(t.__name__ for t in types)}, got "
                             f"{type(value).__name__} {value!r}")
    if name in NON_NEGATIVE and value < 0:
        raise ParameterError(f"parameter {name!r} must be >= 0, got {value!r}")
    if name in ("relations", "pure_categories") and value is not None and not all(
            isinstance(r, str) for r in value):
        raise ParameterError(f"parameter {name!r} must be a list of names, got {value!r}")
    if name in LISTS_OF_NUMBERS and not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1
            for x in value):
        raise ParameterError(f"parameter {name!r} must be a list of shares in [0, 1], "
                             f"got {value!r}")
    return value


def check_all(params: dict[str, Any]) -> dict[str, Any]:
    return {k: check(k, v) for k, v in params.items()}


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("knowshift.profiles").iterdir()
                  if p.name.endswith(".yaml"))


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A profile by name (``smoke``, ``workshop``, ``paper``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ParameterError(f"profile file {name_or_path!r} does not exist")
        text = path.read_text()
    elif name_or_path in profile_names():
        text = resources.files("knowshift.profiles").joinpath(f"{name_or_path}.yaml").read_text()
    else:
        raise ParameterError(f"unknown profile {name_or_path!r}; known: {profile_names()} "
                             "or a path to a .yaml file")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ParameterError(f"profile {name_or_path!r} must be a mapping of parameters")
    return check_all(data)


def parse_override(text: str) -> tuple[str, Any]:
    """``name=value`` from the command line; the value is read as YAML (``5``, ``null``,
    ``[P17, P36]``) and then checked."""
    if "=" not in text:
        raise ParameterError(f"override {text!r} must look like name=value")
    name, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ParameterError(f"override {text!r}: cannot read value ({err})") from err
    if name in ("model", "facts", "device", "method") and value is not None:
        value = str(raw)
    return name, check(name, value)

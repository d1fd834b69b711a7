"""A stand-in for the `paper` profile's model and data that runs on a CPU: the embedded
SmolLM2-135M with its tokenizer made to add a BOS token (as Mistral's and Llama's do), saved as a
local model folder, and an EntityQuestions-format folder (``<split>/<relation>.<split>.json``)
written from the built-in fact set."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
from tokenizers import processors
from transformers import AutoTokenizer

BOS = "<|endoftext|>"          # SmolLM2's document separator, put before every text


def build_model(target: Path) -> Path:
    """The embedded model's folder with a BOS-adding tokenizer (weights linked, not copied)."""
    from knowshift.engine.models import resolve_model
    source = Path(resolve_model("default")[0])
    target.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(source)
    bos_id = tok.convert_tokens_to_ids(BOS)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    tok.bos_token = BOS
    tok.save_pretrained(target)
    config = json.loads((source / "config.json").read_text()) | {"bos_token_id": bos_id}
    (target / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(source / "generation_config.json", target / "generation_config.json")
    weights = target / "model.safetensors"
    weights.unlink(missing_ok=True)
    os.symlink(source / "model.safetensors", weights)
    return target


def write_entityquestions(facts: pd.DataFrame, target: Path, relations: list[str],
                          per_split: int) -> Path:
    """Up to ``per_split`` questions per relation and split, in the published files' format."""
    for (relation, split), rows in facts[facts["relation"].isin(relations)].groupby(
            ["relation", "split"]):
        folder = target / split
        folder.mkdir(parents=True, exist_ok=True)
        items = [{"question": q, "answers": list(a)} for q, a in
                 zip(rows["question"][:per_split], rows["answers"][:per_split])]
        (folder / f"{relation}.{split}.json").write_text(json.dumps(items, indent=1))
    return target

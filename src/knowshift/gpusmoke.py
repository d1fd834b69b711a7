"""``make gpu-smoke``: the ``paper`` profile end to end (SliCK, LoRA fine-tuning on the five
mixes, the analyses, the audit walk-through and the book) on the device at hand, in minutes,
with no hub and no download.

Its model is built on the spot: Mistral-7B's architecture (``knowshift/shapes``) with random
weights, two layers and the vocabulary of the tokenizer kept in the repository (a Llama-style
tokenizer that adds a BOS token, as Mistral's does); at full width on CUDA, tiny on a CPU. Its
facts are an EntityQuestions-format folder kept in the repository (written from the built-in
fact set, :func:`write_entityquestions`), so a GPU machine needs none of the fact packages. A random model
knows nothing, and the paper's mixes need Known examples, so the smoke makes it know some: after
a first SliCK pass, every other train question's gold answer becomes what the model answered
it greedily under the first exemplar set (answers are capped at ``max_new_tokens`` 4, so
the new gold answer's budget is the one it was answered with). Then the whole profile runs
from the command line, with paths relative to the smoke's folder, as a user's run would.

It checks that the code path goes through on the device, not what the model knows: its
findings mean nothing. Figures (time per step, device, categories) go to
``<folder>/gpu-smoke.json``."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from .core.layout import REPOSITORY, RunFolder
from .gpucheck import TOKENIZER, random_config

FACTS = REPOSITORY / "tests" / "data" / "gpu-smoke-facts"
# in-distribution relations of the paper that the built-in fact set has, and one it treats as
# out-of-distribution (none of the paper's 7 OOD relations is in the built-in set)
RELATIONS = ["P17", "P36", "P131", "P30"]
SIZES = {"n_train": 32, "n_dev": 6, "n_test": 9, "n_ood": 4, "n_exemplar_sets": 2,
         "n_samples": 2, "max_new_tokens": 4, "d_size": 8,
         "pure_categories": "[Unknown, Natural]", "epochs": 3, "learning_rate": 0.001,
         "ft_batch_size": 4, "lora_r": 8, "audit_size": 8}


def build_model(target: Path, device: str) -> Path:
    """A random Mistral-shaped model (two layers; full width on CUDA, tiny elsewhere) saved as
    a safetensors folder with the repository's tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    config = random_config(device != "cuda", num_hidden_layers=2, vocab_size=len(tok),
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    net = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    net.save_pretrained(target, safe_serialization=True)
    tok.save_pretrained(target)
    return target


def write_entityquestions(facts, target: Path, relations: list[str], per_split: int) -> Path:
    """Up to ``per_split`` questions per relation and split, in the published files' format
    (``<split>/<relation>.<split>.json``)."""
    for (relation, split), rows in facts[facts["relation"].isin(relations)].groupby(
            ["relation", "split"]):
        folder = target / split
        folder.mkdir(parents=True, exist_ok=True)
        items = [{"question": q, "answers": list(a)} for q, a in
                 zip(rows["question"][:per_split], rows["answers"][:per_split])]
        (folder / f"{relation}.{split}.json").write_text(json.dumps(items, indent=1))
    return target


def teach(slick, facts: Path) -> int:
    """Make every other train question Known: its gold answer becomes the model's greedy answer
    under the first exemplar set (where it answered anything). Returns how many changed."""
    train = slick[slick["split"] == "train"].sort_values("id")
    said = {q: p[0] for q, p in zip(train["question"], train["greedy_predictions"])}
    chosen = {q for q in list(said)[::2] if said[q].strip()}
    for path in sorted((facts / "train").glob("*.json")):
        items = json.loads(path.read_text())
        for item in items:
            if item["question"] in chosen:
                item["answers"] = [said[item["question"]]]
        path.write_text(json.dumps(items, indent=1))
    return len(chosen)


def _run(folder: Path, device: str, stages: list[str], extra: dict) -> float:
    command = [sys.executable, "-m", "knowshift.cli", "run", "--profile", "paper",
               "-p", "model=model", "-p", "facts=eq", "-p", f"device={device}",
               "-p", f"relations=[{', '.join(RELATIONS)}]", *stages]
    for name, value in (SIZES | extra).items():
        command += ["-p", f"{name}={value}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder)
    if done.returncode:
        sys.exit(f"gpu-smoke: `knowshift run --profile paper` failed ({done.returncode}); "
                 "its error is above")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--folder", default="runs/gpu-smoke", help="where it builds and runs")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a size to change, e.g. -p n_train=64")
    args = parser.parse_args(argv)
    extra = dict(p.split("=", 1) for p in args.param)
    folder = Path(args.folder).resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    build_model(folder / "model", args.device)
    shutil.copytree(FACTS, folder / "eq", ignore=shutil.ignore_patterns("*.md"))
    built_s = time.perf_counter() - start
    probe_s = _run(folder, args.device, ["facts", "slick"], extra)
    taught = teach(RunFolder(folder / "runs" / "paper").read("slick"), folder / "eq")
    # the facts stage is keyed by its files' bytes: the edited answers rerun facts and SliCK
    probe_s += _run(folder, args.device, ["facts", "slick"], extra)
    run_s = _run(folder, args.device, [], extra)
    run = RunFolder(folder / "runs" / "paper")
    categories = run.read("slick")["category"].value_counts().to_dict()
    report = {"device": args.device,
              "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
              "torch": torch.__version__, "build_s": built_s, "probe_s": probe_s,
              "run_s": run_s, "taught": taught, "categories": categories,
              "book": str(run.book_index().relative_to(folder))}
    (folder / "gpu-smoke.json").write_text(json.dumps(report, indent=2))
    print(f"gpu-smoke on {report['gpu'] or args.device}: built in {built_s:.0f} s, first SliCK "
          f"pass {probe_s:.0f} s, the paper profile end to end {run_s:.0f} s; categories "
          f"{categories}; book {folder / report['book']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared fixtures. The real default model is loaded once per session (torch jobs must not run
side by side on two cores). Tests that load the model, run a profile, drive Chromium or start
the executor's SLURM cluster are marked ``slow`` (``make test-fast`` leaves them out); one that
asks for a fixture doing so without the mark is refused at collection."""

import io
import os
import shutil
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
# The smoke run of the whole pipeline (stages and book) that several test modules read. It lives
# in the repository's (git-ignored) runs/ folder so its book and the browser check's screenshot
# stay there to look at after `make test`; it starts empty in every test session.
SMOKE_RUN = Path(__file__).parent.parent / "runs" / "test-smoke"
# Tests write nothing outside the repository and temporary folders: the converted default model
# and matplotlib's font cache live in runs/ too (set before anything reads them; a caller's
# own settings win).
CACHES = Path(__file__).parent.parent / "runs" / ".cache"
os.environ.setdefault("KNOWSHIFT_CACHE", str(CACHES / "knowshift"))
os.environ.setdefault("MPLCONFIGDIR", str(CACHES / "matplotlib"))


# fixtures that load the model, run a profile or start a SLURM cluster
SLOW_FIXTURES = {"default_model", "smoke_run", "smoke_fp32_run", "slurm_cluster"}


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items
                if SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"tests using {sorted(SLOW_FIXTURES)} must be marked "
                                f"@pytest.mark.slow: {unmarked}")


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def default_model():
    from knowshift.engine.models import load_model
    return load_model("default", "cpu", "fp32")


@pytest.fixture(scope="session")
def offline_facts():
    from knowshift.study.facts import load_facts
    return load_facts("offline")


@pytest.fixture(scope="session")
def smoke_run():
    from knowshift import pipeline
    shutil.rmtree(SMOKE_RUN, ignore_errors=True)
    log, terminal = [], io.StringIO()
    pipeline.run("smoke", SMOKE_RUN, log=log.append, progress=terminal)
    # what the terminal's bars showed, kept beside the run to look at (and read by a test)
    (SMOKE_RUN / "terminal.log").write_text(terminal.getvalue())
    return SMOKE_RUN, log


@pytest.fixture(scope="session")
def smoke_fp32_run(request, tmp_path_factory):
    """The smoke profile's stages in fp32 (no book): (run folder, log). Where ``precision:
    auto`` is fp32 (a CPU without native bf16) it is the session's smoke run itself; else a
    run of its own, which is then both the other precision's end-to-end run and the one-process
    reference the executor's workers and SLURM jobs are compared with."""
    from knowshift import pipeline
    from knowshift.engine.models import resolve_precision
    if resolve_precision("cpu", "auto") == "fp32":
        return request.getfixturevalue("smoke_run")
    run_dir, log = tmp_path_factory.mktemp("smoke-fp32") / "run", []
    pipeline.run("smoke", run_dir, overrides={"precision": "fp32"}, book=False, log=log.append)
    return run_dir, log


@pytest.fixture(scope="session")
def sentencepiece_model(tmp_path_factory):
    """A tiny Llama with random weights and the SentencePiece-style tokenizer, saved as a
    model folder and loaded as a user's would be."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from knowshift.engine.models import load_model
    tok = AutoTokenizer.from_pretrained(DATA / "tokenizers" / "metaspace")
    torch.manual_seed(0)
    net = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    folder = tmp_path_factory.mktemp("tiny-llama")
    net.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return load_model(str(folder), "cpu", "fp32")

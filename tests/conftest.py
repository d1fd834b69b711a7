"""Shared fixtures. The real default model is loaded once per session (torch jobs must not run
side by side on two cores)."""

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def default_model():
    from knowshift.models import load_model
    return load_model("default", device="cpu")


@pytest.fixture(scope="session")
def offline_facts():
    from knowshift.facts import load_facts
    return load_facts("offline")

"""What a stage's model work amounted to, counted as it runs, so that ``knowshift plan`` can be
checked against a real run and costs can be read per token.

Generation and training call :func:`count` with what they just did; nothing is counted unless
a :func:`recording` is open, and the counts go to the phase named by the innermost
:func:`phase` (for example ``slick greedy``). A stage writes what it recorded to its work file
(:meth:`knowshift.core.layout.RunFolder.work`): the work it did in this process, not what it found
finished in its cache."""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

from ..core.files import write_json


@dataclass
class Tally:
    """Counts of one phase. A prompt with n sampled answers is one prompt and n rows."""
    prompts: int = 0              # prompts answered
    rows: int = 0                 # answers generated (prompts x samples)
    prompt_tokens: int = 0        # tokens of the prompt passes (a shared prefix counted once)
    budget_tokens: int = 0        # the most tokens the rows could generate (their budgets)
    generated_tokens: int = 0     # tokens generated: rows summed over decode steps
    batches: int = 0              # generation batches
    forward_passes: int = 0       # decoder calls: shared-prefix passes and decode steps
    decode_steps: int = 0         # decoder calls that add one token to every row in the batch
                                  # (the first of a batch is its prompt pass)
    trained_examples: int = 0     # examples in optimiser steps (one per example and epoch)
    trained_tokens: int = 0       # tokens of those examples, padding excluded
    train_steps: int = 0          # optimiser steps (one forward and backward pass each)
    model_loads: int = 0          # base models loaded

    def add(self, **counts: int) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + int(n))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


COUNTS = tuple(f.name for f in fields(Tally))
_open: list[dict[str, Tally]] = []
_phases: list[str] = ["other"]


@contextmanager
def recording():
    """Collect every :func:`count` made inside, by phase: yields ``{phase: Tally}``."""
    ledger: dict[str, Tally] = defaultdict(Tally)
    _open.append(ledger)
    try:
        yield ledger
    finally:
        _open.remove(ledger)


@contextmanager
def phase(name: str):
    _phases.append(name)
    try:
        yield
    finally:
        _phases.pop()


def count(**counts: int) -> None:
    for ledger in _open:
        ledger[_phases[-1]].add(**counts)


def add(counts: dict[str, dict[str, int]]) -> None:
    """Add counts recorded elsewhere (``{phase: counts}``, e.g. by a job in another process)
    to the open recordings, phase by phase."""
    for ledger in _open:
        for name, tally in counts.items():
            ledger[name].add(**tally)


def counts_of(ledger: dict[str, Tally]) -> dict[str, dict[str, int]]:
    """A recording as plain counts, ``{phase: counts}`` (for a file, or from a job)."""
    return {name: tally.as_dict() for name, tally in ledger.items()}


def write(ledger: dict[str, Tally], path) -> None:
    write_json(counts_of(ledger), path)

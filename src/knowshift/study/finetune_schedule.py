"""When a fine-tuning run answers what, declared once for the run itself
(:mod:`knowshift.study.finetune_run`), the checkpoints read from its rows
(:mod:`knowshift.study.checkpoints`) and ``knowshift plan``'s counts: the held-out sets each run
is asked, which of them after every epoch and which at its checkpoints only, and the rules of
EARLY_STOP and CONVERGENCE. No torch here, so the analyses that read the rules import none."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

# Held-out sets the category-pure variants are not tested on (stage 6 reads their in-distribution
# test accuracy by category, as the paper's Table 2; nothing reads their OOD accuracy).
TESTED_ONLY_IN_DISTRIBUTION = ("ood",)
# The held-out set EARLY_STOP is chosen on: answered after every epoch by every run.
EARLY_STOP_SET = "dev"


def early_stop_epoch(dev_accuracy: pd.Series) -> int:
    """EARLY_STOP: the first epoch of best dev accuracy (``dev_accuracy`` indexed by epoch)."""
    return int(dev_accuracy.idxmax())


def convergence_epoch(train_accuracy: pd.Series) -> int:
    """CONVERGENCE: the last epoch, as in the paper (``train_accuracy`` indexed by epoch)."""
    return int(train_accuracy.index.max())


def tested_when(asked: dict[str, pd.DataFrame], test_every_epoch: bool
                ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(the sets of ``asked`` answered after every epoch, the ones answered only at EARLY_STOP
    and CONVERGENCE): all after every epoch when ``test_every_epoch``, else the dev set."""
    every = {k: v for k, v in asked.items() if test_every_epoch or k == EARLY_STOP_SET}
    return every, {k: v for k, v in asked.items() if k not in every}


def training_runs(sets: pd.DataFrame, held_out: dict[str, pd.DataFrame]
                  ) -> Iterator[tuple[int, str, pd.DataFrame, dict[str, pd.DataFrame], bool]]:
    """Per (seed, variant) of ``sets``: (seed, variant, its examples, the held-out sets it is
    asked, whether they are asked after every epoch). Mixes are tested after every epoch (the
    regression reads them all), other kinds at their checkpoints only; category-pure sets
    in-distribution only."""
    for seed, variant in dict.fromkeys(zip(sets["seed"], sets["variant"])):
        examples = sets[(sets["seed"] == seed) & (sets["variant"] == variant)].reset_index(
            drop=True)
        asked = {k: v for k, v in held_out.items()
                 if k not in TESTED_ONLY_IN_DISTRIBUTION or examples["kind"].iloc[0] != "pure"}
        yield seed, variant, examples, asked, bool((examples["kind"] == "mix").all())

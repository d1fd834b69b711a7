"""Where everything lives: the stages, their notebooks, the products each one writes in a run
folder and the products it reads, declared once (the way a ploomber pipeline declares each
task's ``product`` and upstream). The stage graph follows from the reads: a stage's stamp holds
the stamps of the stages whose products it reads, so a change stales only what lies downstream
of it. Stage writers, the pipeline's up-to-date check, the notebooks, the comparison, the audit
and the CLI all ask :class:`RunFolder` for a path by its product name; none spells a path
itself, and inside a stage's run (``$KNOWSHIFT_STAGE``) a product the stage does not declare is
refused."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import KnowshiftError, MissingStageOutputError

# The clone the package runs from (an editable install): it holds notebooks/ and book/.
REPOSITORY = Path(__file__).resolve().parents[3]
RUNS = Path("runs")
FIGURE_SUFFIXES = (".png", ".svg")

# An audit's output folder (``knowshift audit``, and the walk-through of stage 8): file names.
AUDIT_FILES = {"report": "report.html", "json": "audit.json", "examples": "examples.parquet",
               "skipped": "skipped.parquet", "filtered": "filtered{suffix}", "idk": "idk{suffix}"}
AUDIT_CACHE = "cache"
# Set by the pipeline for a stage's kernel: the stage running (its reads are enforced).
STAGE_ENV = "KNOWSHIFT_STAGE"


@dataclass(frozen=True)
class Stage:
    """One study stage: its notebook, its products (name -> path in the run folder), its
    figures (saved as ``<stage>/figures/<name>.png`` and ``.svg``) and the products of earlier
    stages it reads."""
    name: str
    notebook: str
    products: dict[str, str]
    figures: tuple[str, ...] = ()
    cache: str | None = None          # a folder of finished chunks, kept between runs
    reads: tuple[str, ...] = ()


STAGES = (
    Stage("facts", "01_facts.ipynb",
          {"facts": "facts/facts.parquet", "study": "facts/study.parquet"},
          ("relation_sizes",)),
    Stage("slick", "02_slick.ipynb", {"slick": "slick/slick.parquet"},
          ("category_mix", "category_vs_popularity"), cache="slick/cache",
          reads=("facts", "study")),
    Stage("finetune", "03_finetune.ipynb",
          {"sets": "finetune/sets.parquet", "results": "finetune/results.parquet",
           "metrics": "finetune/metrics.parquet", "checkpoints": "finetune/checkpoints.parquet"},
          ("accuracy_vs_unknown",), cache="finetune/cache", reads=("slick",)),
    Stage("dynamics", "04_dynamics.ipynb",
          {"fit_curves": "dynamics/fit_curves.parquet",
           "epochs_to_fit": "dynamics/epochs_to_fit.parquet"}, ("fit_curves",),
          reads=("results",)),
    Stage("regression", "05_regression.ipynb",
          {"points": "regression/points.parquet",
           "coefficients": "regression/coefficients.parquet"}, ("regression",),
          reads=("metrics",)),
    Stage("categories", "06_categories.ipynb",
          {"accuracy_by_category": "categories/accuracy_by_category.parquet"},
          ("category_heatmap",), reads=("results", "checkpoints")),
    Stage("mitigations", "07_mitigations.ipynb",
          {"mitigations": "mitigations/comparison.parquet"}, ("mitigations",),
          reads=("results", "checkpoints")),
    Stage("audit", "08_audit.ipynb",
          {"heldout": "audit/heldout.jsonl",
           **{f"audit_{k}": f"audit/{v.format(suffix='.jsonl')}"
              for k, v in AUDIT_FILES.items()}},
          cache=f"audit/{AUDIT_CACHE}",
          reads=("facts", "study", "points")),   # the run's own fit for the expected effect
)
STAGE_NAMES = [s.name for s in STAGES]
_PRODUCER = {p: s for s in STAGES for p in s.products}
_FIGURE_OF = {f: s for s in STAGES for f in s.figures}


def stage(name: str) -> Stage:
    return STAGES[STAGE_NAMES.index(name)]


def inputs(name: str) -> list[str]:
    """The stages whose products stage ``name`` reads, in study order."""
    return [s for s in STAGE_NAMES if any(_PRODUCER[p].name == s for p in stage(name).reads)]


def with_inputs(names) -> list[str]:
    """``names`` and every stage they read from, directly or not, in study order."""
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(inputs(name))
    return [s for s in STAGE_NAMES if s in wanted]


def run_dir_for(profile: str | Path, run_dir: str | Path | None = None) -> Path:
    """Where a profile's run lives: ``run_dir`` if given, else ``runs/<profile name>``."""
    return Path(run_dir or RUNS / Path(profile).stem)


def audit_folder(data: str | Path) -> Path:
    """Where ``knowshift audit DATA`` writes by default: ``runs/audit/<DATA name>``."""
    return RUNS / "audit" / Path(data).stem


def audit_file(out_dir: str | Path, name: str, suffix: str = "") -> Path:
    """A file of an audit's output folder, by its name in :data:`AUDIT_FILES`."""
    return Path(out_dir) / AUDIT_FILES[name].format(suffix=suffix)


class RunFolder:
    """The paths of one run folder, by product name."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def path(self, product: str) -> Path:
        if product not in _PRODUCER:
            raise KeyError(f"no stage declares the product {product!r}")
        running = os.environ.get(STAGE_ENV)
        if running in STAGE_NAMES and product not in (*stage(running).reads,
                                                      *stage(running).products):
            raise KnowshiftError(
                f"stage {running} reads the product {product!r} of stage "
                f"{_PRODUCER[product].name} without declaring it: add it to the stage's reads "
                "in core/layout.py (its stamp must follow that stage's)")
        return self.root / _PRODUCER[product].products[product]

    def existing(self, product: str) -> Path:
        """The path of ``product``; :class:`MissingStageOutputError` naming the stage that
        writes it if it is not there."""
        path = self.path(product)
        if not path.is_file():
            name = _PRODUCER[product].name
            raise MissingStageOutputError(
                f"{path} is missing: run stage {STAGE_NAMES.index(name) + 1} ({name}) first, "
                f"e.g. `knowshift run {name}`")
        return path

    def read(self, product: str):
        """A parquet product as a DataFrame (see :meth:`existing`). pandas is imported here so
        that the layout, at the bottom of the package, costs nothing to import."""
        import pandas as pd
        return pd.read_parquet(self.existing(product))

    def figure(self, name: str) -> Path:
        """The stem of a figure (``.png``/``.svg`` are added when it is saved)."""
        s = _FIGURE_OF[name]
        return self.root / s.name / "figures" / name

    def cache(self, stage_name: str) -> Path:
        return self.root / stage(stage_name).cache

    def audit_dir(self) -> Path:
        """The folder of the audit walk-through (stage 8)."""
        return self.path("audit_report").parent

    def outputs(self, stage_name: str) -> list[Path]:
        """What must exist for ``stage_name`` to count as done: its products and the PNG of
        each of its figures."""
        s = stage(stage_name)
        return ([self.root / p for p in s.products.values()]
                + [self.figure(f).with_suffix(".png") for f in s.figures])

    # the pipeline's own files
    def stamp(self, stage_name: str) -> Path:
        return self.root / ".stamps" / f"{stage_name}.json"

    def stamp_record(self, stage_name: str) -> dict:
        """What a stage's stamp records ({} if there is none or it is unreadable): the one
        reader of the JSON the pipeline writes."""
        try:
            record = json.loads(self.stamp(stage_name).read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def progress(self, stage_name: str) -> Path:
        """Where a running stage writes its progress (:mod:`knowshift.core.progress`)."""
        return self.root / ".progress" / f"{stage_name}.json"

    def jobs(self, stage_name: str) -> Path:
        """Where an executor's jobs for a stage keep their logs and record
        (:mod:`knowshift.engine.executor`)."""
        return self.root / ".jobs" / stage_name

    def work(self, stage_name: str) -> Path:
        """What a stage's model work amounted to in its last run (:mod:`knowshift.engine.work`)."""
        return self.root / ".work" / f"{stage_name}.json"

    def notebooks(self) -> Path:
        return self.root / "notebooks"

    def notebook(self, stage_name: str) -> Path:
        return self.notebooks() / stage(stage_name).notebook

    # the book of the run
    def book(self) -> Path:
        return self.root / "book"

    def book_source(self) -> Path:
        return self.book() / "source"

    def book_scratch(self) -> Path:
        return self.book() / ".build"

    def book_html(self) -> Path:
        return self.book() / "html"

    def book_index(self) -> Path:
        return self.book_html() / "index.html"

    def book_log(self) -> Path:
        return self.book() / "build.log"

    def book_screenshot(self, chapter: str = "results") -> Path:
        return self.book() / "screenshots" / f"{chapter}.png"

    SCREENSHOT_CHAPTERS = ("results", "workshop")

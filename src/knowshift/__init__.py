"""knowshift: a runnable companion to Gekhman et al. (2024), "Does Fine-Tuning LLMs on New
Knowledge Encourage Hallucinations?".

Four layers, each a subpackage that imports only the ones below it (``ARCHITECTURE.md``):
:mod:`~knowshift.core` (schema, parameters, run-folder layout, files, keys, statistics),
:mod:`~knowshift.engine` (the model, generation, the executor), :mod:`~knowshift.study` (one
module per stage of the paper's study) and, above it, :mod:`~knowshift.audit` and
:mod:`~knowshift.book`; the CLI and the pipeline on top. Notebooks call the study modules.

Modules of the flat layout before 0.2 (``knowshift.slick``) still import, with a
``FutureWarning`` naming the new path (:data:`MOVED`); ``knowshift.audit`` and ``knowshift.book``
are now packages (``knowshift.audit.judge``, ``knowshift.book.build``)."""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.2.0"

# Old module (below knowshift) -> where it lives now.
MOVED = {
    "errors": "core.errors",
    "answers": "core.answers",
    "schema": "core.schema",
    "params": "core.params",
    "layout": "core.layout",
    "files": "core.files",
    "provenance": "core.provenance",
    "progress": "core.progress",
    "stats": "core.stats",
    "scoring": "core.scoring",
    "models": "engine.models",
    "encoding": "engine.encoding",
    "generation": "engine.generation",
    "evaluation": "engine.evaluation",
    "host": "engine.host",
    "executor": "engine.executor",
    "work": "engine.work",
    "facts": "study.facts",
    "offline_facts": "study.offline_facts",
    "slick": "study.slick",
    "finetune_sets": "study.finetune_sets",
    "finetune": "study.finetune",
    "checkpoints": "study.checkpoints",
    "dynamics": "study.dynamics",
    "regression": "study.regression",
    "categories": "study.categories",
    "mitigations": "study.mitigations",
    "figures": "study.figures",
    "comparison": "study.findings",
    "audit_files": "audit.containers",
    "audit_data": "audit.rows",
    "audit_effect": "audit.effect",
    "audit_scope": "audit.scope",
    "audit_report": "audit.report",
    "bookcheck": "book.check",
}


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``knowshift.<old>`` as the module it moved to, with a warning."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = f"{__name__}.{MOVED[spec.name.partition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}; import it from there",
                      FutureWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


sys.meta_path.append(_MovedModule())

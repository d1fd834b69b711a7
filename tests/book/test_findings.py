"""The registry of the paper's findings by stable id, the pages' citations of them (checked
before the book builds), and the words the book layer writes: no model, no run."""

import json
import shutil

import pandas as pd
import pytest

from knowshift.book import build
from knowshift.book import findings as pages
from knowshift.core.errors import BookBuildError, KnowshiftError
from knowshift.core.files import write_json
from knowshift.core.layout import RunFolder
from knowshift.core.params import Params
from knowshift.study import findings
from handmade_run import write_run

# Chosen once; pages cite them, so none may change (a new finding adds an id at the end).
IDS = ("slick-mix", "fitted-slower", "unknown-lowers-accuracy", "gap-grows",
       "harmful-once-fitted", "beta-unk", "beta-kn", "ood-beta-unk", "maybeknown-best",
       "unknown-worst", "idk-helps")


def test_every_finding_has_its_stable_id():
    assert findings.IDS == IDS
    assert [f.id for f in findings.FINDINGS] == list(IDS)
    assert all(findings.ID_PATTERN.fullmatch(i) for i in IDS)
    assert findings.by_id("beta-unk").paper.startswith("β_unk = −8.3")
    assert findings.number("beta-unk") == 6        # the display number: its position


def test_an_unknown_id_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(findings.UnknownFindingError) as err:
        findings.by_id("beta-unkn")
    assert isinstance(err.value, KeyError) and isinstance(err.value, KnowshiftError)
    assert str(err.value) == ("no finding has the id 'beta-unkn'; known ids: "
                              + ", ".join(IDS))


def test_the_registry_quotes_the_paper_as_published():
    """arXiv v3, the camera-ready: PaLM 2-S, not the PaLM 2-M of v1 and v2."""
    text = " ".join(f"{f.claim} {f.paper} {f.why}" for f in findings.FINDINGS)
    assert "PaLM 2-S" in text and "PaLM 2-M" not in text
    assert "2405.05904v3" in findings.__doc__
    setup = {setting: paper for setting, paper, _ in pages.PAPER_SETUP}
    assert setup["model"] == "PaLM 2-S (not public)"
    assert setup["fine-tuning"] == "full, lr 1e-5, batch 128"
    assert "Answer the following question. <question>" in setup["example format"]
    assert "one, PaLM 2-S" in setup["models"] and "no open-model replication" in setup["models"]


def test_citations_are_found_in_a_page():
    text = ("{{ finding beta-unk }} and {ref}`finding-idk-helps`, {ref}`the drop "
            "<finding-unknown-lowers-accuracy>`, {{ finding nope }}; not {ref}`how-sure`, "
            "{ref}`a < b <finding-beta-kn>` points at ' b <finding-beta-kn'")
    assert pages.cited(text) == ["beta-unk", "idk-helps", "unknown-lowers-accuracy", "nope",
                                 " b <finding-beta-kn"]
    assert pages.unknown_findings({"a.md": text, "b.md": "{ref}`finding-beta-kn`"}) == [
        "a.md: unknown finding id 'nope'", "a.md: unknown finding id ' b <finding-beta-kn'"]


def test_every_page_of_the_book_cites_findings_that_exist():
    build.check_citations(build.sources_dir())
    cited = "".join(p.read_text() for p in build.sources_dir().glob("*.md"))
    assert "{{ finding beta-unk }}" in cited and "finding-harmful-once-fitted" in cited
    assert "finding 5" not in cited and "{{ finding 3 }}" not in cited


@pytest.fixture
def bad_book(tmp_path):
    """A copy of book/ whose workshop page asks for a finding by number and whose related
    page cites one that does not exist."""
    sources = tmp_path / "book"
    shutil.copytree(build.sources_dir(), sources)
    workshop = sources / "workshop.md"
    workshop.write_text(workshop.read_text() + "\n{{ finding 3 }}\n")
    related = sources / "related.md"
    related.write_text(related.read_text() + "\nSee {ref}`the gap <finding-gap-grow>`.\n")
    return sources


def test_a_citation_of_an_unknown_finding_fails_the_build_early(bad_book, tmp_path):
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["Feeds {ref}`finding-slick-mix` and\n",
                                             "{ref}`finding-slick-mixes`."]},
        {"cell_type": "code", "source": "", "outputs": [
            {"output_type": "display_data",
             "data": {"text/markdown": "as {ref}`finding-idk-help` says"}}]}]}))
    with pytest.raises(BookBuildError) as err:
        build.check_citations(bad_book, {"notebooks/02_slick": notebook})
    lines = str(err.value).splitlines()
    assert lines[1:] == ["  related.md: unknown finding id 'gap-grow'",
                         "  workshop.md: unknown finding id '3'",
                         "  notebooks/02_slick.ipynb: unknown finding id 'slick-mixes'",
                         "  notebooks/02_slick.ipynb: unknown finding id 'idk-help'"]
    assert "known ids: slick-mix, fitted-slower" in lines[0]


def test_staging_refuses_the_page_before_reading_any_table(bad_book, tmp_path):
    """A run folder with its notebooks but none of the tables: the unknown id is what stops
    the build, not a missing product."""
    run = RunFolder(tmp_path / "run")
    run.notebooks().mkdir(parents=True)
    for nb in build.toc_notebooks(bad_book):
        (run.notebooks() / f"{nb.split('/')[-1]}.ipynb").write_text(json.dumps({"cells": []}))
    with pytest.raises(BookBuildError, match="workshop.md: unknown finding id '3'"):
        build.stage_sources(run.root, bad_book)
    assert not run.book_source().exists()


@pytest.fixture
def table(tmp_path):
    return findings.compare(write_run(tmp_path / "run"))


def test_a_placeholder_is_filled_with_that_findings_number_and_verdict(table):
    text = build._fill_findings("{{ run_name }}: {{ finding unknown-worst }}; "
                                "{{ finding slick-mix }}", table, "reference")
    row = table.set_index("id").loc["unknown-worst"]
    assert text.startswith(f"`reference`: {row['ours']} (**agrees**); HighlyKnown 25 [7, 59]")
    with pytest.raises(findings.UnknownFindingError):
        pages.fill("{{ finding gap-grow }}", table)


def test_each_finding_has_its_labelled_section_on_the_results_page(table):
    text = pages.markdown(table)
    for i, f in enumerate(findings.FINDINGS, 1):
        assert f"({pages.label(f.id)})=\n### {f.claim}\n" in text
        assert f"(row {i} of the table)" in text
    assert text.index("(finding-slick-mix)=") < text.index("(finding-idk-helps)=")
    assert "| 11 |" in text                     # the table keeps its display numbers
    report = pages.report(table)
    assert "#10 {ref}`finding-unknown-worst`" in report
    assert pages.unknown_findings({"results.md": text + report}) == []


def test_the_deviations_show_the_example_format_fine_tuning_and_models(tmp_path):
    root = write_run(tmp_path / "run")
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in Params().items()}
    write_json({"params": params}, RunFolder(root).stamp("finetune"))
    shown = pd.DataFrame([line.strip("| ").split(" | ")
                          for line in pages.deviations(root).splitlines()[2:]],
                         columns=["setting", "the paper", "this run"]).set_index("setting")
    assert shown.loc["example format", "this run"] == (
        r"closed-book `Q: <question>\nA: <answer>`, the loss on the answer only")
    assert shown.loc["fine-tuning", "this run"] == (
        f"full, lr {params['learning_rate']:g}, batch {params['ft_batch_size']}")
    assert shown.loc["models", "this run"].startswith("one per run, `")
    assert "?" not in set(shown["this run"])

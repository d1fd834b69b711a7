"""Publishing the book: the GitHub Pages workflow file, and `knowshift book --publish`."""

from pathlib import Path

import pytest
import yaml

from knowshift import cli
from knowshift.core.errors import BookBuildError
from knowshift.core.layout import RunFolder, run_dir_for

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_pages_workflow_runs_the_readme_commands_and_deploys_the_printed_folder():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))        # YAML 1.1 reads `on` as true
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "pages": "write",
                                       "id-token": "write"}
    steps = _steps(workflow)
    runs = [step.get("run", "") for step in steps]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    readme = (ROOT / "README.md").read_text()
    build = next(r for r in runs if r.startswith("make run"))
    assert build == "make run PROFILE=reference" and build in readme
    check = next(i for i, r in enumerate(runs) if "knowshift book --profile reference --check" in r)
    assert runs.index("make run PROFILE=replication") < check   # both readings in the book
    assert {"actions/checkout", "actions/configure-pages", "actions/upload-pages-artifact",
            "actions/deploy-pages"} <= set(uses)
    upload = next(s for s in steps if s.get("uses", "").startswith(
        "actions/upload-pages-artifact"))
    printed = RunFolder(run_dir_for("reference")).book_html()    # what `knowshift run` prints
    assert Path(upload["with"]["path"]) == printed
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    env = workflow["jobs"]["build"]["env"]
    assert env["KNOWSHIFT_REPOSITORY_URL"] == "${{ github.server_url }}/${{ github.repository }}"


@pytest.mark.slow
def test_publish_copies_the_book_for_static_hosting_and_never_clobbers(smoke_run, tmp_path,
                                                                       capsys):
    run_dir, _ = smoke_run
    site = tmp_path / "site"
    assert cli.main(["book", "--run-dir", str(run_dir), "--publish", str(site)]) == 0
    assert (site / "index.html").is_file() and (site / ".nojekyll").is_file()
    assert (site / "results.html").read_text() == (
        RunFolder(run_dir).book_html() / "results.html").read_text()
    assert f"published: {site / 'index.html'}" in capsys.readouterr().out
    assert cli.main(["book", "--run-dir", str(run_dir), "--publish", str(site)]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    from knowshift.book import build as book
    with pytest.raises(BookBuildError, match="is not empty"):
        book.publish(run_dir, mine)
    assert (mine / "notes.txt").read_text() == "keep me"

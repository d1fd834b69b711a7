"""The parameter schema: every rule refuses what it should, profiles hold only differences, the
stage configs and the notebooks follow the declared defaults."""

import ast
import json
from importlib import resources

import pytest
import yaml

from knowshift.core import params as P
from knowshift.core.errors import ParameterError
from knowshift.core.layout import STAGES, run_dir_for
from knowshift.pipeline import notebooks_dir
from knowshift.study.finetune import FinetuneConfig
from knowshift.study.slick import SlickConfig


@pytest.mark.parametrize("name, value, message", [
    ("n_train", "many", r"'n_train' \(.*\) must be int, got str 'many'"),
    ("n_train", -1, "'n_train' must be >= 0, got -1"),
    ("n_train", True, "must be int, got bool True"),
    ("n_exemplar_sets", 0, "'n_exemplar_sets' must be >= 1"),
    ("seed", -3, "'seed' must be >= 0"),
    ("seeds", [0, 0], "'seeds' must not repeat a seed"),
    ("seeds", [], "'seeds' must be a non-empty list of seeds"),
    ("seeds", [0, -1], "'seeds' must be a non-empty list of seeds"),
    ("temperature", 0, r"'temperature' must be in \(0, 2\]"),
    ("temperature", 2.5, r"'temperature' must be in \(0, 2\]"),
    ("learning_rate", 1.5, r"'learning_rate' must be in \(0, 1\)"),
    ("weight_decay", -0.1, "'weight_decay' must be >= 0"),
    ("device", "gpu", r"'device' must be one of \['auto', 'cpu', 'cuda'\]"),
    ("method", "qlora", r"'method' must be one of \['full', 'lora'\]"),
    ("model", "  ", "'model' must not be empty"),
    ("facts", 3, "'facts' .* must be str"),
    ("relations", ["P17", 3], "'relations' must be a list of names"),
    ("relations", "P17", "must be list or tuple or null"),
    ("pure_categories", ["Famous"], r"unknown name\(s\) \['Famous'\]"),
    ("unknown_shares", [], "must list at least one share"),
    ("unknown_shares", [0, 1.5], r"must be a list of shares in \[0, 1\]"),
    ("mitigation_shares", [True], r"must be a list of shares in \[0, 1\]"),
    ("unknown_shares", [0, 0.12, 0.125],
     "'unknown_shares' has 0.12 and 0.125, which would both name the variant '12%'"),
    ("unknown_shares", [0.5, 0, 0.5], "'unknown_shares' repeats the share 0.5"),
    ("mitigation_shares", [0.251, 0.25], "has 0.251 and 0.25, which would both name"),
    ("d_size", 0, "'d_size' must be >= 1"),
    ("lr", 0.1, "unknown parameter 'lr'"),
])
def test_every_rule_refuses_what_it_should(name, value, message):
    with pytest.raises(ParameterError, match=message):
        P.check(name, value)


def test_checked_values_take_one_form():
    assert P.check("temperature", 1) == 1.0 and isinstance(P.check("temperature", 1), float)
    assert P.check("relations", ["P17", "P36"]) == ("P17", "P36")
    assert P.check("relations", None) is None
    assert P.check("mitigation_shares", []) == ()            # no mitigation variants


def test_every_default_passes_its_own_rule():
    for name, p in P.SCHEMA.items():
        assert P.check(name, p.default) == p.default, name
        assert p.stages and set(p.stages) <= {s.name for s in STAGES}, name


def test_overrides_from_the_command_line():
    assert P.parse_override("relations=[P17, P36]") == ("relations", ("P17", "P36"))
    assert P.parse_override("model=./my-model") == ("model", "./my-model")
    assert P.parse_override("model=123") == ("model", "123")   # text parameters stay text
    assert P.parse_override("relations=null") == ("relations", None)
    with pytest.raises(ParameterError, match="name=value"):
        P.parse_override("n_train")
    with pytest.raises(ParameterError, match="unknown parameter 'lr'"):
        P.parse_override("lr=3")


def test_params_merge_defaults_profile_and_overrides():
    smoke = P.resolve("smoke", {"epochs": 3})
    assert smoke.n_exemplar_sets == 2 and smoke.epochs == 3 and smoke["k_shot"] == 4
    assert P.resolve("paper").n_exemplar_sets == 10
    assert P.resolve("workshop") == P.Params()
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['lr'\]"):
        P.Params({"lr": 1})
    with pytest.raises(ParameterError, match="unknown profile 'tiny'"):
        P.resolve("tiny")


def test_a_stage_reads_only_what_it_declares():
    facts = P.Params().for_stage("facts")
    assert set(facts) == {"facts", "relations", "n_train", "n_dev", "n_test", "n_ood", "seed"}
    assert "model" not in facts and "seed" in facts
    with pytest.raises(ParameterError, match="'model' is not declared for this stage"):
        facts.model


def test_a_profile_file_is_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: five\n")
    with pytest.raises(ParameterError, match="'epochs'.*must be int"):
        P.resolve(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="must be a mapping"):
        P.resolve(bad)
    good = tmp_path / "mine.yaml"
    good.write_text("d_size: 96\n")
    assert P.resolve(good).d_size == 96


def test_a_profile_extends_another_and_a_bad_base_is_refused(tmp_path):
    replication = P.resolve("replication")
    assert replication.seeds == (5, 6, 7, 8, 9)
    assert not set(replication.seeds) & set(P.resolve("reference").seeds)
    assert replication.plain() | {"seeds": None} == P.resolve("reference").plain() | {
        "seeds": None}                        # the same study set, SliCK and fine-tuning
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: replication\nepochs: 3\n")
    assert (P.resolve(mine).epochs, P.resolve(mine).seeds) == (3, (5, 6, 7, 8, 9))
    mine.write_text(f"extends: {mine}\n")
    with pytest.raises(ParameterError, match="'extends' must name another profile"):
        P.resolve(mine)
    mine.write_text("extends: nonesuch\n")
    with pytest.raises(ParameterError, match="unknown profile 'nonesuch'"):
        P.resolve(mine)


def test_profiles_hold_only_differences_from_the_defaults():
    for name in P.profile_names():
        text = resources.files("knowshift.profiles").joinpath(f"{name}.yaml").read_text()
        entries = yaml.safe_load(text) or {}
        base = P.read_profile(entries.pop(P.EXTENDS)) if P.EXTENDS in entries else {}
        repeated = [k for k, v in entries.items()
                    if P.check(k, v) == base.get(k, P.SCHEMA[k].default)]
        assert not repeated, f"profile {name} repeats the values of {repeated}"
    # the workshop profile is the defaults
    assert P.read_profile("workshop") == {}


def test_stage_configs_follow_the_schema():
    assert SlickConfig() == SlickConfig.from_params(P.Params())
    assert FinetuneConfig() == FinetuneConfig.from_params(P.Params())
    for config in (SlickConfig(), FinetuneConfig()):
        for field, value in vars(config).items():
            assert value == P.SCHEMA[field].default, field
    with pytest.raises(ParameterError, match="'k_shot' must be >= 1"):
        SlickConfig(k_shot=0)


def _parameters_cell(notebook):
    nb = json.loads(notebook.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.targets[0].id: ast.literal_eval(t.value) for t in tree.body}


def test_notebooks_run_the_workshop_profile_by_default():
    """Opened in Jupyter and run top to bottom, a notebook runs what `knowshift run` runs: its
    parameters cell names the workshop profile and its run folder, and sets no parameter (every
    stage's, as every stage's ``run_stage`` takes the run folder and the parameters)."""
    for stage in STAGES:
        cell = _parameters_cell(notebooks_dir() / stage.notebook)
        # the notebooks run in notebooks/, one level below the repository root
        assert cell["run_dir"] == f"../{run_dir_for(P.DEFAULT_PROFILE).as_posix()}", stage.notebook
        assert set(cell) == {"run_dir", "profile", "overrides"}, stage.notebook
        assert cell["profile"] == P.DEFAULT_PROFILE and cell["overrides"] == {}


def test_the_paper_profile_holds_the_papers_settings():
    """Section 2, appendix A (relations) and appendix C (SliCK) of the paper."""
    from knowshift.study.facts import EQ_IN_DISTRIBUTION, EQ_OUT_OF_DISTRIBUTION
    paper = P.resolve("paper")
    assert sorted(paper.relations) == sorted(EQ_IN_DISTRIBUTION + EQ_OUT_OF_DISTRIBUTION)
    assert len(EQ_IN_DISTRIBUTION) == 12 and len(EQ_OUT_OF_DISTRIBUTION) == 7
    assert (paper.n_exemplar_sets, paper.k_shot, paper.n_samples, paper.temperature,
            paper.top_k, paper.exemplar_split) == (10, 4, 16, 0.5, 40, "dev")
    assert list(paper.unknown_shares) == [0, 0.25, 0.5, 0.75, 1.0]


def test_paths_are_resolved_against_the_callers_directory_and_shown_without_it(tmp_path):
    (tmp_path / "my-model").mkdir()
    given = P.resolve("smoke", {"facts": "data/eq", "model": "./my-model"})
    resolved = given.with_paths_resolved(tmp_path)
    assert resolved.facts == str(tmp_path / "data" / "eq")
    assert resolved.model == str(tmp_path / "my-model")
    assert sorted(resolved.path_names()) == ["facts", "model"]
    kept = P.resolve("smoke", {"model": "mistralai/Mistral-7B-v0.1"}).with_paths_resolved(tmp_path)
    assert (kept.facts, kept.model) == ("offline", "mistralai/Mistral-7B-v0.1")
    assert kept.path_names() == []
    assert P.resolve("smoke", {"facts": "/data/eq"}).with_paths_resolved(tmp_path).facts == \
        "/data/eq"
    # a page shows a path inside the repository relative to it, one in the home folder under ~
    repo = notebooks_dir().parent
    inside = P.resolve("smoke", {"facts": str(repo / "tests" / "data" / "entityquestions")})
    shown = {r["parameter"]: r["value"] for r in inside.for_stage("facts").rows()}
    assert shown["facts"] == "tests/data/entityquestions"
    assert P.shown_path(str(tmp_path / "eq"), home=tmp_path) == "~/eq"
    assert P.shown_path("/elsewhere/eq", home=tmp_path) == ".../eq"        # no machine path


def test_a_page_shows_a_path_as_typed_from_where_the_run_started(tmp_path, monkeypatch):
    monkeypatch.setenv(P.CALLER_DIR_ENV, str(tmp_path))
    assert P.shown_path(str(tmp_path / "data" / "eq")) == "data/eq"
    assert P.shown_path(str(tmp_path)) == "."

from collections import Counter
from pathlib import Path

import pytest

from dataenvgym_dagster.cli import main
from dataenvgym_dagster.domain.arithmetic.domain import ARITHMETIC
from dataenvgym_dagster.experiments.config import DEFAULT_CATALOG, CatalogError, load_catalog
from dataenvgym_dagster.loop.steps import pretraining_corpus
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, make_workspace, write_catalog


def test_the_shipped_catalogue_is_valid_and_names_its_default():
    catalog = load_catalog(DEFAULT_CATALOG)
    assert catalog.default_experiment in catalog.experiments
    assert "arithmetic" in catalog.domains


def test_an_unknown_policy_is_rejected_with_the_choices(tmp_path):
    path = write_catalog(tmp_path / "c.yaml", {"experiments": {"x": {"policy": "oracle"}}, "default_experiment": "x"})
    with pytest.raises(CatalogError, match=r"policy 'oracle' does not exist.*weak_skills, no_state"):
        load_catalog(path)


def test_an_unknown_domain_is_rejected_with_the_known_ones(tmp_path):
    path = write_catalog(tmp_path / "c.yaml", {"domains": {"chess": {}}})
    with pytest.raises(CatalogError, match="unknown domain 'chess'; available domains: arithmetic"):
        load_catalog(path)


def test_a_misspelt_setting_is_rejected_not_ignored(tmp_path):
    path = write_catalog(tmp_path / "c.yaml", {"experiments": {"skill_list": {"data_budgett": 5}}})
    with pytest.raises(CatalogError, match="data_budgett"):
        load_catalog(path)


def test_broken_yaml_and_missing_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("iterations: [3\n")
    with pytest.raises(CatalogError, match="broken.yaml is not valid YAML"):
        load_catalog(broken)
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "absent.yaml")


def test_a_name_written_twice_is_refused_with_both_lines_not_silently_replaced(tmp_path):
    # PyYAML keeps the last of two equal keys: the first experiment would vanish without a word.
    text = write_catalog(tmp_path / "base.yaml").read_text()
    second = text.replace("  skill_list_no_state:\n", "  skill_list:\n")
    assert second.count("  skill_list:\n") == 2
    (tmp_path / "twice.yaml").write_text(second)
    first_line = second.splitlines().index("  skill_list:") + 1
    second_line = second.splitlines().index("  skill_list:", first_line) + 1
    with pytest.raises(CatalogError) as raised:
        load_catalog(tmp_path / "twice.yaml")
    message = str(raised.value)
    assert f"experiments.skill_list (lines {first_line} and {second_line}) is written twice" in message
    assert "\n" not in message
    (tmp_path / "iterations.yaml").write_text(text + "iterations: 5\n")
    with pytest.raises(CatalogError, match=r"iterations \(lines \d+ and \d+\) is written twice"):
        load_catalog(tmp_path / "iterations.yaml")


def test_a_setting_taken_from_a_yaml_merge_may_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    text = write_catalog(tmp_path / "base.yaml").read_text().replace("experiments:\n", "experiments:\n  merged:\n    <<: *shared\n    data_budget: 9\n", 1)
    path.write_text("x-shared: &shared {data_budget: 7, policy: no_state}\n" + text)
    experiment = load_catalog(path).experiments["merged"]
    assert (experiment.data_budget, experiment.policy) == (9, "no_state")


def test_a_catalogue_that_is_a_folder_or_not_utf8_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(CatalogError, match="folder.yaml is a folder; point DATAENVGYM_EXPERIMENTS at the YAML file itself"):
        load_catalog(tmp_path / "folder.yaml")
    (tmp_path / "latin1.yaml").write_bytes("iterations: 2 # r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(CatalogError, match=r"latin1.yaml is not UTF-8 text \(byte 17: invalid continuation byte\); save it as UTF-8"):
        load_catalog(tmp_path / "latin1.yaml")
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(tmp_path / "folder.yaml"))
    assert main(["status"]) == 2
    error = capsys.readouterr().err.strip()
    assert "folder.yaml is a folder" in error and "\n" not in error


def test_the_cli_refuses_an_unknown_experiment_before_running_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    assert main(["run", "--experiment", "nope"]) == 2
    assert "unknown experiment 'nope'; this catalogue has: skill_list, " in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_the_shipped_catalogue_has_every_environment_with_its_no_state_baseline():
    catalog = load_catalog(DEFAULT_CATALOG)
    pairs = {(s.environment, s.policy) for s in catalog.experiments.values()}
    for environment in ("open_ended", "skill_list", "skill_tree"):
        assert (environment, "no_state") in pairs
        assert any(env == environment and policy != "no_state" for env, policy in pairs)
    assert {("skill_list", "uniform"), ("skill_list", "random_skill")} <= pairs


def test_a_policy_must_belong_to_its_environment(tmp_path):
    experiments = {"x": {"environment": "skill_tree", "policy": "weak_skills"}}
    path = write_catalog(tmp_path / "c.yaml", {"experiments": experiments, "default_experiment": "x"})
    with pytest.raises(CatalogError, match="policy 'weak_skills' does not exist for environment 'skill_tree'; choose one of: explore_exploit, no_state"):
        load_catalog(path)


def test_a_multi_seed_experiment_becomes_one_partition_per_seed(tmp_path):
    experiments = {"tree": {"environment": "skill_tree", "policy": "explore_exploit", "seeds": [0, 1, 2]}}
    path = write_catalog(tmp_path / "c.yaml", {"experiments": experiments, "default_experiment": "tree_seed0"})
    catalog = load_catalog(path)
    assert list(catalog.runs) == ["tree_seed0", "tree_seed1", "tree_seed2"]
    assert catalog.experiment("tree_seed2").seed == 2
    assert catalog.run("tree_seed1").name == "tree"


def test_yaml_anchors_under_x_keys_are_allowed_for_shared_settings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(write_catalog(tmp_path / "base.yaml").read_text() + "x-shared: &shared {data_budget: 7}\n")
    assert load_catalog(path).experiments["skill_list"].data_budget == 96


def _with_head_start(tmp_path, head_start: dict, **base_student) -> Path:
    domain = {**MICRO_CATALOG["domains"]["arithmetic"]}
    domain["base_student"] = {**domain["base_student"], **base_student, "head_start": head_start}
    return write_catalog(tmp_path / "c.yaml", {"domains": {"arithmetic": domain}})


def test_a_head_start_pretrains_the_base_student_on_its_skills_and_barely_on_the_others(tmp_path):
    head = ["addition/one_digit", "comparison/two_digit"]
    catalog = load_catalog(_with_head_start(tmp_path, {"skills": head, "others_weight": 0.05}))
    corpus = pretraining_corpus(ARITHMETIC, catalog.domains["arithmetic"].base_student)
    counts = Counter(corpus["skill"])
    others = len(ARITHMETIC.taxonomy.skills) - len(head)
    # weights 1, 1 and 0.05 x 10: the head start holds 2 / 2.5 of the corpus, about 320 of its 400 examples
    assert sum(counts[skill] for skill in head) / len(corpus) == pytest.approx(2 / (2 + 0.05 * others), abs=0.05)
    assert set(counts) == set(ARITHMETIC.taxonomy.skills)  # the others are seen a little: their words are in the tokenizer


def test_without_a_head_start_the_corpus_is_the_shipped_mixture_unchanged(tmp_path):
    settings = load_catalog(write_catalog(tmp_path / "c.yaml")).domains["arithmetic"].base_student
    assert settings.head_start is None
    assert settings.mixture(["addition/one_digit", "two_step/mixed"]) == {"addition/one_digit": 1.0, "two_step/mixed": 1.0}


def test_a_head_start_on_an_unknown_skill_or_beside_a_mixture_is_refused(tmp_path):
    with pytest.raises(CatalogError, match=r"head_start.skills names unknown skills \['addition/ten_digit'\]; arithmetic's skills are"):
        load_catalog(_with_head_start(tmp_path, {"skills": ["addition/ten_digit"]}))
    with pytest.raises(CatalogError, match="both pretraining_mixture and head_start"):
        load_catalog(_with_head_start(tmp_path, {"skills": ["addition/one_digit"]}, pretraining_mixture={"two_step/mixed": 2}))


def test_the_foundations_of_a_head_start_domain_pretrain_on_the_head_start(tmp_path):
    domain = {**MICRO_CATALOG["domains"]["arithmetic"]}
    domain["base_student"] = {**domain["base_student"], "head_start": {"skills": ["addition/one_digit"], "others_weight": 0.0}}
    workspace = make_workspace(tmp_path, {"domains": {"arithmetic": domain}})
    workspace.run_foundations()
    with Warehouse(workspace.home).connect() as connection:
        skills = connection.sql("SELECT DISTINCT skill FROM pretraining_corpus").fetchall()
    assert skills == [("addition/one_digit",)]


def test_a_check_across_the_catalogue_names_the_line_of_the_field_it_names(tmp_path):
    # Checks that need the domain (its skills) run on the whole catalogue; their one line still points at the field.
    path = _with_head_start(tmp_path, {"skills": ["addition/ten_digit"]})
    lines = [text.strip() for text in path.read_text().splitlines()]
    line = lines.index("head_start:") + 2  # its `skills:` follows it
    assert lines[line - 1].startswith("skills:")
    with pytest.raises(CatalogError) as refused:
        load_catalog(path)
    assert f"is invalid: line {line}: domains.arithmetic.base_student.head_start.skills names unknown skills" in str(refused.value)


def test_keys_are_duplicates_when_yaml_makes_the_same_key_of_them():
    from dataenvgym_dagster.experiments.errors import duplicate_key

    assert duplicate_key("16: a\n0x10: b\n") == "0x10 (lines 1 and 2)"
    assert duplicate_key("on: a\ntrue: b\n") == "true (lines 1 and 2)"  # YAML 1.1 booleans, as safe_load reads them
    assert duplicate_key("d:\n  <<: {x: 1, x: 2}\n") == "d.x (line 2, columns 8 and 14)"  # inside an inline merge
    assert duplicate_key('"a\\nb": 1\n"a\\nb": 2\n') == "a b (lines 1 and 2)"  # the message stays one line
    assert duplicate_key("1: a\n'1': b\n") is None  # an int and a string: two keys
    assert duplicate_key("x: &s {a: 1}\nd:\n  <<: [*s]\n  a: 2\n") is None  # a merged key overridden


def test_a_validation_message_is_one_line_whatever_the_value_holds():
    from pydantic import BaseModel, ValidationError, field_validator

    from dataenvgym_dagster.domain.errors import one_line

    class Settings(BaseModel):
        count: int
        name: str

        @field_validator("name")
        @classmethod
        def _name(cls, value: str) -> str:
            raise ValueError("first line\nsecond line")

    with pytest.raises(ValidationError) as raised:
        Settings(count="line1\nline2" + "x" * 100, name="n")
    message = one_line(raised.value, "options")
    assert "\n" not in message and message.startswith("options.count: must be a valid integer")
    assert "options.name: first line second line" in message and len(message) < 250

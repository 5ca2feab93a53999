import pytest

from dataenvgym_dagster.cli import main
from dataenvgym_dagster.experiments.config import CatalogError, load_catalog

from .conftest import write_catalog


def test_the_shipped_catalogue_is_valid_and_names_its_default():
    catalog = load_catalog()
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


def test_the_cli_refuses_an_unknown_experiment_before_running_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    assert main(["run", "--experiment", "nope"]) == 2
    assert "unknown experiment 'nope'; this catalogue has: skill_list, skill_list_no_state" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()

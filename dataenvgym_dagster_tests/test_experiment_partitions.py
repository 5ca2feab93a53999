"""Experiments as partitions: only the domains an experiment names, and new ones without a restart."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from dagster import (
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_schedule_context,
)
from dagster._core.errors import DagsterUnknownPartitionError

from dataenvgym_dagster.cli import main
from dataenvgym_dagster.defs.automation import SENSOR as ADVANCE
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB, iteration_job_name
from dataenvgym_dagster.defs.partitions import EXPERIMENTS, loop_partition_key, registered_experiments
from dataenvgym_dagster.defs.registration import SENSOR as REGISTER
from dataenvgym_dagster.defs.schedules import schedule_name
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.experiments.config import CatalogError
from dataenvgym_dagster.experiments.registration import needs_reload
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, make_workspace, tick, write_catalog

SKILL_LIST = MICRO_CATALOG["experiments"]["skill_list"]
# Two domains; `arithmetic_only` names one of them. Code's foundations are never materialised here.
TWO_DOMAINS = {
    "domains": {**MICRO_CATALOG["domains"], "code": {"benchmark": {"validation_per_skill": 2, "test_per_skill": 2}}},
    "experiments": {**MICRO_CATALOG["experiments"], "arithmetic_only": {**SKILL_LIST, "domains": ["arithmetic"]}},
}


def add_to_file(workspace, experiments: dict, **settings) -> None:
    """Edit the catalogue file the definitions were loaded from, as a user would while the location runs."""
    catalog_file = workspace.home.parent / "experiments.yaml"
    raw = yaml.safe_load(catalog_file.read_text())
    raw["experiments"].update(experiments)
    catalog_file.write_text(yaml.safe_dump({**raw, **settings}))


# -- an experiment names its domains -------------------------------------------------------------
def test_an_unknown_domain_of_an_experiment_is_a_clear_error(tmp_path):
    experiments = {**MICRO_CATALOG["experiments"], "x": {**SKILL_LIST, "domains": ["arithmetic", "chess"]}}
    with pytest.raises(CatalogError, match=r"experiments.x.domains names unknown domain 'chess'; this catalogue's domains are: arithmetic"):
        load_catalog(write_catalog(tmp_path / "c.yaml", {"experiments": experiments}))


def test_an_experiment_name_that_cannot_be_a_partition_key_is_refused(tmp_path):
    experiments = {**MICRO_CATALOG["experiments"], "a|b": SKILL_LIST}
    with pytest.raises(CatalogError, match=r"experiment name 'a\|b' is not usable as a partition key"):
        load_catalog(write_catalog(tmp_path / "c.yaml", {"experiments": experiments}))


def test_without_domains_an_experiment_runs_on_every_domain(tmp_path):
    catalog = load_catalog(write_catalog(tmp_path / "c.yaml", TWO_DOMAINS))
    assert ("code", "skill_list") in catalog.pairs and ("arithmetic", "skill_list") in catalog.pairs
    assert catalog.domains_of("arithmetic_only") == ("arithmetic",)
    assert ("code", "arithmetic_only") not in catalog.pairs


def test_a_pair_outside_an_experiments_domains_is_refused_by_the_cli_sensor_and_schedule(tmp_path, monkeypatch, capsys):
    experiments = {**TWO_DOMAINS["experiments"], "arithmetic_only": {
        **TWO_DOMAINS["experiments"]["arithmetic_only"], "automation": "eager", "schedule": "0 3 * * *"}}
    workspace = make_workspace(tmp_path, {**TWO_DOMAINS, "experiments": experiments})
    (tmp_path / "dagster").mkdir()  # schedule contexts need an instance on disk
    workspace = dataclasses.replace(workspace, instance=DagsterInstance.local_temp(str(tmp_path / "dagster")))

    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(tmp_path / "experiments.yaml"))
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "cli_home"))
    assert main(["run", "--domain", "code", "--experiment", "arithmetic_only"]) == 2
    error = capsys.readouterr().err
    assert "experiment 'arithmetic_only' does not run on domain 'code'" in error and "pick arithmetic|arithmetic_only" in error
    assert not (tmp_path / "cli_home").exists()

    advanced = tick(workspace, ADVANCE)  # the automation sensor starts the arithmetic foundations only
    assert [(r.job_name, r.partition_key) for r in advanced.run_requests] == [(FOUNDATIONS_JOB, "arithmetic")]
    scheduled = workspace.defs.resolve_schedule_def(schedule_name("arithmetic_only"))(build_schedule_context(instance=workspace.instance))
    assert [r.partition_key for r in scheduled] == [loop_partition_key("arithmetic", "arithmetic_only")]


def test_a_run_launched_on_a_pair_outside_its_domains_fails_at_once_saying_which_to_pick(tmp_path):
    # What a launch from the UI's partition picker (which offers every domain × experiment) does.
    workspace = make_workspace(tmp_path, TWO_DOMAINS)
    workspace.instance.add_dynamic_partitions(EXPERIMENTS.name, ["arithmetic_only"])
    result = workspace.defs.resolve_job_def(iteration_job_name(0)).execute_in_process(
        partition_key=loop_partition_key("code", "arithmetic_only"), instance=workspace.instance, raise_on_error=False
    )
    assert not result.success
    errors = [str(event.event_specific_data.error) for event in result.all_events if event.is_step_failure]
    assert any("code|arithmetic_only is not a partition to run; pick arithmetic|arithmetic_only" in e for e in errors)
    written = [path for path in workspace.home.rglob("*") if "code" in path.relative_to(workspace.home).parts]
    assert written == []  # nothing was stored for the pair


# -- new experiments without a restart -----------------------------------------------------------
def test_an_entry_added_to_the_file_after_loading_is_registered_by_a_tick_and_materialises(tmp_path):
    workspace = make_workspace(tmp_path)
    workspace.run_foundations()
    assert isinstance(tick(workspace, REGISTER), SensorResult)  # the entries present at load
    assert registered_experiments(workspace.instance) == {"skill_list", "skill_list_no_state"}

    add_to_file(workspace, {"late": {**SKILL_LIST, "policy": "no_state", "seed": 7}})
    with pytest.raises(DagsterUnknownPartitionError):  # not a partition until a tick registers it
        workspace.defs.resolve_job_def(iteration_job_name(0)).execute_in_process(
            partition_key=loop_partition_key("arithmetic", "late"), instance=workspace.instance)
    tick(workspace, REGISTER)
    assert "late" in registered_experiments(workspace.instance)
    again = tick(workspace, REGISTER)
    assert isinstance(again, SkipReason) and "no new experiment (3 registered)" in again.skip_message

    result = workspace.defs.resolve_job_def(iteration_job_name(0)).execute_in_process(
        partition_key=loop_partition_key("arithmetic", "late"), instance=workspace.instance)
    assert result.success
    with Warehouse(workspace.home).connect() as connection:  # its settings were read from the file at run time
        row = connection.sql("SELECT policy, seed FROM experiment_runs WHERE experiment = 'late'").fetchall()
    assert row == [("no_state", 7)]


def test_an_entry_that_needs_more_iterations_than_loaded_is_refused_with_the_reason(tmp_path):
    workspace = make_workspace(tmp_path)
    add_to_file(workspace, {"longer": SKILL_LIST}, iterations=5)  # every entry of the file now asks for 5
    skipped = tick(workspace, REGISTER)
    assert isinstance(skipped, SkipReason)
    assert "refused longer: the catalogue asks for 5 iterations but the loaded definitions have 2" in skipped.skip_message
    assert "reload the code location" in skipped.skip_message
    assert registered_experiments(workspace.instance) == set()


def test_an_entry_whose_filter_needs_the_gpu_pool_is_refused_when_loaded_without_it(tmp_path):
    workspace = make_workspace(tmp_path)
    add_to_file(workspace, {"solved": {**SKILL_LIST, "quality": {"drop_solved": True}}})
    refusal = needs_reload(workspace.catalog, load_catalog(workspace.home.parent / "experiments.yaml"), "solved")
    assert "drop_solved" in refusal and "gpu pool" in refusal
    assert needs_reload(workspace.catalog, workspace.catalog, "skill_list") is None


def test_an_eager_entry_added_after_loading_is_registered_and_started_in_one_tick(tmp_path):
    workspace = make_workspace(tmp_path)
    workspace.run_foundations()
    add_to_file(workspace, {"eager_late": {**SKILL_LIST, "automation": "eager"}})
    result = tick(workspace, ADVANCE)
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [
        (TEACHING_LOOP_JOB, loop_partition_key("arithmetic", "eager_late"))
    ]
    assert registered_experiments(workspace.instance) == {"eager_late"}


@pytest.mark.slow
def test_the_cli_registers_its_experiment_on_a_fresh_home_without_a_daemon(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(write_catalog(tmp_path / "experiments.yaml", {"iterations": 1})))
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    assert main(["run", "--experiment", "skill_list_no_state"]) == 0
    with DagsterInstance.get() as instance:
        assert registered_experiments(instance) == {"skill_list_no_state"}
        runs = instance.get_runs()
    assert {run.job_name for run in runs} == {FOUNDATIONS_JOB, TEACHING_LOOP_JOB}


def test_a_sensor_tick_shows_why_it_did_nothing_as_the_cursor_the_sensor_page_displays(tmp_path):
    from dagster import DagsterInstance, build_sensor_context

    from dataenvgym_dagster.definitions import build_definitions

    catalog_file = write_catalog(tmp_path / "experiments.yaml")
    definitions = build_definitions(home=str(tmp_path / "home"), experiments_file=catalog_file)
    with DagsterInstance.ephemeral() as instance:
        for name in ("register_experiments", "advance_experiments"):
            context = build_sensor_context(instance=instance)
            definitions.resolve_sensor_def(name)(context)
            assert context.cursor, name
        assert context.cursor == "no experiment in the catalogue has `automation: eager`"

import os
import subprocess
import sys
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from dataenvgym_dagster.definitions import build_definitions, defs
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import register_experiments
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.experiments.config import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parents[1]


def key(*path: str) -> AssetKey:
    """A foundations key (``key("base_student")``) or an iteration's (``key("iteration_1", "skill_taxonomy")``)."""
    if len(path) == 1:
        return AssetKey(path[0])
    group, name = path
    return iteration_key(int(group.removeprefix("iteration_")), name)


def test_default_definitions_have_one_group_per_iteration_from_the_catalogue():
    catalog = load_catalog(DEFAULT_CATALOG)  # session fixtures may point DATAENVGYM_EXPERIMENTS elsewhere
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"foundations", *(f"iteration_{t}" for t in range(catalog.iterations + 1)), "reports"}  # reports: the leaderboard


def test_iterations_are_chained_by_declared_dependencies():
    graph = defs.resolve_asset_graph()
    parents = lambda *path: graph.get(key(*path)).parent_keys
    assert parents("iteration_1", "environment_state") == {
        key("iteration_0", "validation_evaluation"),
        key("iteration_1", "skill_taxonomy"),
    }
    assert parents("iteration_2", "environment_state") == {
        key("iteration_1", "validation_evaluation"),
        key("iteration_2", "skill_taxonomy"),
        key("iteration_1", "environment_state"),  # Skill-Tree grows the last forest; trends need the last state
        key("iteration_1", "data_generation_plan"),  # the sub-skills and shares the last action chose
    }
    assert parents("iteration_2", "skill_taxonomy") == {key("benchmark_splits"), key("iteration_1", "skill_taxonomy")}
    assert parents("iteration_1", "data_generation_plan") == {key("iteration_1", "environment_state")}
    assert parents("iteration_2", "generated_dataset") == {
        key("iteration_2", "data_generation_plan"),
        key("iteration_1", "student_checkpoint"),  # drop_solved asks the current student
        key("iteration_1", "generated_dataset"),  # duplicates of earlier data are filtered
        key("benchmark_splits"),  # nothing generated may equal a benchmark question
    }
    assert parents("iteration_2", "student_checkpoint") == {
        key("iteration_2", "generated_dataset"),
        key("iteration_1", "generated_dataset"),
        key("iteration_1", "student_checkpoint"),
        key("base_student"),
        key("pretraining_corpus"),
    }
    assert parents("iteration_0", "student_checkpoint") == {key("base_student")}
    # The teacher never sees the test split: nothing downstream of a test evaluation.
    assert not graph.get(key("iteration_1", "test_evaluation")).child_keys


def test_generated_examples_trace_back_to_the_evaluation_that_motivated_them():
    graph = defs.resolve_asset_graph()
    ancestors = graph.upstream_key_iterator(key("iteration_2", "generated_dataset"))
    assert key("iteration_1", "validation_evaluation") in set(ancestors)


def test_loop_assets_are_partitioned_by_domain_and_a_dynamic_experiment_and_foundations_by_domain():
    graph = defs.resolve_asset_graph()
    loop = graph.get(key("iteration_1", "student_checkpoint")).partitions_def
    assert isinstance(loop, MultiPartitionsDefinition)
    dimensions = {d.name: d.partitions_def for d in loop.partitions_defs}
    assert isinstance(dimensions["domain"], StaticPartitionsDefinition)
    assert isinstance(dimensions["experiment"], DynamicPartitionsDefinition)  # registered without a restart
    assert isinstance(graph.get(key("benchmark_splits")).partitions_def, StaticPartitionsDefinition)
    instance = DagsterInstance.ephemeral()
    assert loop.get_partition_keys(dynamic_partitions_store=instance) == []
    register_experiments(instance, ["skill_list"])
    assert "arithmetic|skill_list" in loop.get_partition_keys(dynamic_partitions_store=instance)


def test_the_number_of_iterations_comes_from_the_catalogue(tmp_path):
    catalog = load_catalog(DEFAULT_CATALOG).model_copy(update={"iterations": 5})
    graph = build_definitions(catalog, str(tmp_path)).resolve_asset_graph()
    assert graph.has(key("iteration_5", "test_evaluation"))
    assert not graph.has(key("iteration_6", "test_evaluation"))


def test_dagster_cli_validates_the_workspace(tmp_path):
    environment = {**os.environ, "DATAENVGYM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [Path(sys.executable).with_name("dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        check=False, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""The gym API materialises the loop's own assets: stepping with a built-in policy's plans reproduces its run."""

from __future__ import annotations

import pytest

from dataenvgym_dagster.defs.jobs import run_experiment
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import loop_partition_key
from dataenvgym_dagster.defs.resources import home_warehouse
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.gym import StepError, TeachingEnv
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG, make_workspace

pytestmark = pytest.mark.slow

# Every table a step writes, compared row for row (the experiment column aside).
TABLES = ["data_generation_plans", "policy_actions", "generated_examples", "environment_states", "evaluation_results", "training_runs"]
UNTIMED = {"training_runs": ["seconds", "tokens_per_second"]}


def test_stepping_with_a_built_in_policys_plans_reproduces_its_tables_and_rewards(tmp_path):
    twin = {**MICRO_CATALOG["experiments"]["skill_list"]}
    workspace = make_workspace(tmp_path, {"experiments": {**MICRO_CATALOG["experiments"], "gym": twin}})
    assert all(result.success for result in run_experiment(workspace.defs, workspace.instance, "arithmetic", "skill_list", say=lambda line: None))

    env = TeachingEnv("arithmetic", "gym", catalog_file=tmp_path / "experiments.yaml", home=workspace.home,
                      instance=workspace.instance, definitions=workspace.defs)
    state, info = env.reset()
    assert (state.iteration, info["iteration"]) == (1, 0)
    rewards, terminated = [], False
    while not terminated:
        made: DataGenerationPlan = workspace.defs.load_asset_value(
            iteration_key(state.iteration, "data_generation_plan"), instance=workspace.instance,
            partition_key=str(loop_partition_key("arithmetic", "skill_list")),
        )
        state, reward, terminated, truncated, info = env.step(made.model_copy(update={"experiment": "gym"}))
        rewards.append(reward)
        assert not truncated
    assert state is None and info["iteration"] == 2

    connection = home_warehouse(workspace.home).connect()
    for table in TABLES:
        columns = [c for c in connection.sql(f"SELECT * FROM {table} LIMIT 0").columns if c not in {"experiment", *UNTIMED.get(table, [])}]
        rows = {
            experiment: connection.sql(f"SELECT {', '.join(columns)} FROM {table} WHERE experiment = '{experiment}' ORDER BY ALL").fetchall()
            for experiment in ("skill_list", "gym")
        }
        assert rows["gym"] == rows["skill_list"] and rows["gym"], table
    accuracy = dict(connection.sql(
        "SELECT iteration, avg(correct::INTEGER) FROM evaluation_results WHERE experiment = 'gym' AND split = 'validation' GROUP BY 1"
    ).fetchall())
    assert rewards == pytest.approx([accuracy[1] - accuracy[0], accuracy[2] - accuracy[1]])

    # A plan over the budget is refused with the environment's reason, and the episode can start again.
    state, _ = env.reset()
    greedy = DataGenerationPlan(domain="arithmetic", experiment="gym", iteration=1, environment="skill_list", policy="greedy",
                                entries=(PlanEntry(entry_id="all", skill=state.skills[0].skill, count=10_000, rationale="all"),))
    with pytest.raises(StepError, match="asks for 10000 examples, over the budget of 96"):
        env.step(greedy)
    assert env.iteration == 0

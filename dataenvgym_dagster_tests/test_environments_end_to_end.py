"""Every environment × policy runs the whole micro loop offline, through Dagster, into the warehouse."""

import copy
import json

import polars as pl
import pytest

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.environments import ENVIRONMENTS
from dataenvgym_dagster.machinery.student.evaluation import complete
from dataenvgym_dagster.machinery.student.training import load_student
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, MICRO_TRAINING, Workspace, make_workspace

pytestmark = pytest.mark.slow

COMBINATIONS = [(env, policy) for env, environment in ENVIRONMENTS.items() for policy, spec in environment.policies.items() if not spec.needs_chat]
EXPERIMENTS = {
    f"{env}__{policy}": {"environment": env, "policy": policy, "data_budget": 96, "training": {"settings": MICRO_TRAINING}}
    for env, policy in COMBINATIONS
}


@pytest.fixture(scope="module")
def every_policy(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    overrides = {"experiments": {**MICRO_CATALOG["experiments"], **EXPERIMENTS}}
    workspace = make_workspace(tmp_path_factory.mktemp("every_policy"), overrides)
    workspace.run_foundations()
    return workspace


def query(workspace: Workspace, sql: str, *params) -> pl.DataFrame:
    with Warehouse(workspace.home).connect() as connection:
        return connection.sql(sql, params=list(params) or None).pl()


@pytest.mark.parametrize(("environment", "policy"), COMBINATIONS)
def test_every_environment_and_policy_materialises_the_whole_loop(every_policy, environment, policy):
    experiment = f"{environment}__{policy}"
    assert every_policy.run_loop(experiment=experiment).success
    runs = query(every_policy, "SELECT environment, policy FROM experiment_runs WHERE experiment = ?", experiment)
    assert runs.rows() == [(environment, policy)]
    per_iteration = query(
        every_policy,
        "SELECT iteration, sum(count) AS n, count(*) AS entries FROM data_generation_plans WHERE experiment = ? GROUP BY 1 ORDER BY 1",
        experiment,
    )
    assert per_iteration["iteration"].to_list() == [1, 2]
    assert per_iteration["n"].to_list() == [96, 96]  # every policy spends exactly the same budget
    states = query(every_policy, "SELECT DISTINCT environment FROM environment_states WHERE experiment = ?", experiment)
    assert states["environment"].to_list() == [environment]
    actions = query(every_policy, "SELECT count(*) AS n FROM policy_actions WHERE experiment = ?", experiment)
    assert actions["n"][0] > 0
    evaluated = query(every_policy, "SELECT DISTINCT iteration FROM evaluation_results WHERE experiment = ? ORDER BY 1", experiment)
    assert evaluated["iteration"].to_list() == [0, 1, 2]


def test_skill_tree_records_explore_then_grows_trees_from_the_last_plan(every_policy):
    experiment = "skill_tree__explore_exploit"
    assert every_policy.run_loop(experiment=experiment).success
    first = query(every_policy, "SELECT skill, action, reward, detail FROM policy_actions WHERE experiment = ? AND iteration = 1", experiment)
    assert set(first["action"]) == {"explore"} and first["reward"].is_null().all()  # empty trees, no reward yet
    second = query(every_policy, "SELECT skill, action, reward, detail FROM policy_actions WHERE experiment = ? AND iteration = 2", experiment)
    assert second["reward"].is_not_null().all()
    for detail in second["detail"]:
        assert json.loads(detail)["before"]  # iteration 2 starts from the trees iteration 1 grew
    subskills = query(
        every_policy,
        "SELECT node, parent, allocation, generated_so_far FROM environment_states WHERE experiment = ? AND iteration = 2 AND kind = 'subskill'",
        experiment,
    )
    assert len(subskills) > 0
    assert subskills.group_by("parent").agg(pl.col("allocation").sum())["allocation"].to_list() == pytest.approx([1.0] * subskills["parent"].n_unique())


def test_open_ended_plans_imitate_the_errors_of_the_last_evaluation(every_policy):
    experiment = "open_ended__near_misses"
    assert every_policy.run_loop(experiment=experiment).success
    imitated = query(
        every_policy,
        """SELECT a.skill AS example_id, e.correct FROM policy_actions a JOIN evaluation_results e
           ON e.example_id = a.skill AND e.experiment = a.experiment AND e.iteration = a.iteration - 1 AND e.split = 'validation'
           WHERE a.experiment = ?""",
        experiment,
    )
    assert len(imitated) > 0 and not imitated["correct"].any()


def test_drop_solved_drops_exactly_what_the_current_student_already_answers(tmp_path):
    # A base student pretrained on comparisons only answers some comparisons right.
    comparisons_only = {skill: 0.0 for skill in ARITHMETIC.taxonomy.skills if skill != "comparison/two_digit"}
    domains = copy.deepcopy(MICRO_CATALOG["domains"])
    domains["arithmetic"]["base_student"]["pretraining_mixture"] = comparisons_only
    experiments = {"solved": {"policy": "uniform", "data_budget": 120, "quality": {"drop_solved": True}, "training": {"settings": MICRO_TRAINING}}}
    overrides = {"experiments": experiments, "default_experiment": "solved", "iterations": 1, "domains": domains}
    workspace = make_workspace(tmp_path, overrides)
    workspace.run_foundations()
    assert workspace.run_loop(experiment="solved").success

    candidates = query(
        workspace,
        """SELECT question, answer, rejection_reason FROM generated_examples
           WHERE experiment = 'solved' AND (rejection_reason IS NULL OR rejection_reason = 'already_solved')""",
    )
    model, tokenizer = load_student(workspace.home / "checkpoints" / "arithmetic" / "base")
    pairs = [(f"{q}=", a[::-1]) for q, a in candidates.select("question", "answer").iter_rows()]
    completions, _ = complete(model, tokenizer, pairs, max_new_tokens=6, progress=lambda message: None)
    solved = [ARITHMETIC.parse(c.text) == a for c, a in zip(completions, candidates["answer"], strict=True)]
    assert sum(solved) > 0
    assert solved == (candidates["rejection_reason"] == "already_solved").fill_null(False).to_list()

"""Suites: a grid in the catalogue expands to readable experiment partitions; a suite run resumes and survives failures."""

from __future__ import annotations

import pytest
import yaml

from dataenvgym_dagster.domain.environments import ENVIRONMENTS, PolicyContext
from dataenvgym_dagster.domain.environments.open_ended import OpenEndedState
from dataenvgym_dagster.domain.environments.performance import SkillPerformance
from dataenvgym_dagster.domain.environments.skill_list import SkillListState
from dataenvgym_dagster.domain.environments.skill_tree import SkillTree, SkillTreeState, SubskillNode
from dataenvgym_dagster.domain.types import EvaluationRecord
from dataenvgym_dagster.experiments.config import CatalogError, load_catalog

from .conftest import MICRO_CATALOG, MICRO_TRAINING, make_workspace

SUITE = {
    "domains": ["arithmetic"],
    "environments": ["skill_list", "open_ended"],
    "agents": ["learnable", "near_misses", "no_state", "negative_control"],
    "seeds": [0, 1],
    "settings": {"data_budget": 500},
}


def catalog_with(tmp_path, suites: dict, experiments: dict | None = None):
    raw = {**MICRO_CATALOG, "suites": suites, **({"experiments": experiments} if experiments is not None else {})}
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(raw))
    return load_catalog(tmp_path / "experiments.yaml")


def test_a_suite_expands_to_one_experiment_per_environment_and_agent_that_exists_there(tmp_path):
    catalog = catalog_with(tmp_path, {"table2": SUITE})
    assert list(catalog.suite("table2").experiments("table2")) == [
        "table2.skill_list.learnable", "table2.skill_list.no_state", "table2.skill_list.negative_control",
        "table2.open_ended.near_misses", "table2.open_ended.no_state", "table2.open_ended.negative_control",
    ]
    settings = catalog.experiment("table2.open_ended.near_misses_seed1")
    assert (settings.environment, settings.policy, settings.seed, settings.data_budget) == ("open_ended", "near_misses", 1, 500)
    assert settings.domains == ("arithmetic",)


def test_a_suites_partitions_are_domain_by_experiment_by_seed_and_are_catalogue_partitions(tmp_path):
    catalog = catalog_with(tmp_path, {"table2": SUITE})
    partitions = catalog.suite_partitions("table2")
    assert len(partitions) == 1 * 6 * 2
    assert partitions[:2] == [("arithmetic", "table2.skill_list.learnable_seed0"), ("arithmetic", "table2.skill_list.learnable_seed1")]
    assert set(partitions) <= set(catalog.pairs)  # registered, launched and shown like any experiment


def test_an_outside_agent_runs_in_every_environment_under_a_partition_safe_name(tmp_path):
    catalog = catalog_with(tmp_path, {"s": {**SUITE, "agents": ["my_agents.curriculum:policy"]}})
    assert list(catalog.suite("s").experiments("s")) == ["s.skill_list.my_agents.curriculum-policy", "s.open_ended.my_agents.curriculum-policy"]
    assert catalog.experiment("s.open_ended.my_agents.curriculum-policy_seed0").policy == "my_agents.curriculum:policy"


def test_suite_settings_may_not_set_what_the_grid_decides(tmp_path):
    with pytest.raises(CatalogError, match=r"suite settings set \['policy'\], which the suite's grid decides"):
        catalog_with(tmp_path, {"bad": {**SUITE, "settings": {"policy": "uniform"}}})


def test_an_agent_in_none_of_the_suites_environments_is_refused_with_the_choices(tmp_path):
    with pytest.raises(CatalogError, match=r"agent 'explore_exploit' exists in none of the suite's environments"):
        catalog_with(tmp_path, {"bad": {**SUITE, "agents": ["explore_exploit"]}})


def test_a_suite_experiment_may_not_clash_with_a_catalogue_experiment(tmp_path):
    experiments = {**MICRO_CATALOG["experiments"], "s.skill_list.no_state": {"policy": "no_state"}}
    with pytest.raises(CatalogError, match="makes experiment 's.skill_list.no_state', which the catalogue already has"):
        catalog_with(tmp_path, {"s": SUITE}, experiments)


def test_an_unknown_suite_names_the_known_ones(tmp_path):
    catalog = catalog_with(tmp_path, {"table2": SUITE})
    with pytest.raises(KeyError, match="unknown suite 'nope'; this catalogue's suites: table2"):
        catalog.suite_partitions("nope")


def test_the_shipped_catalogue_declares_the_table2_suite():
    catalog = load_catalog()
    suite = catalog.suite("table2")
    assert set(suite.environments) == set(ENVIRONMENTS)
    assert all("negative_control" in suite.agents_in(environment) for environment in suite.environments)
    assert len(suite.seeds) == 3


def test_agents_may_be_chosen_per_environment(tmp_path):
    agents = {"skill_list": ["learnable", "uniform"], "open_ended": ["no_state"]}
    catalog = catalog_with(tmp_path, {"s": {**SUITE, "agents": agents}})
    assert list(catalog.suite("s").experiments("s")) == ["s.skill_list.learnable", "s.skill_list.uniform", "s.open_ended.no_state"]
    with pytest.raises(CatalogError, match="suite agents.open_ended: policy 'learnable' does not exist for environment 'open_ended'"):
        catalog_with(tmp_path, {"s": {**SUITE, "agents": {"open_ended": ["learnable"]}}})


# -- the negative control reads the state to do the wrong thing -----------------------------------
def performance(skill: str, right: int, n: int = 10) -> SkillPerformance:
    return SkillPerformance(skill=skill, n=n, n_correct=right, answer_loss=1.0)


def test_skill_list_negative_control_funds_the_mastered_skill_most():
    state = SkillListState(
        domain="arithmetic", experiment="x", iteration=1, evaluated_iteration=0,
        categories={"easy": "a", "medium": "a", "hard": "a"},
        skills=(performance("easy", 10), performance("medium", 5), performance("hard", 0)),
    )
    spec = ENVIRONMENTS["skill_list"].policies["negative_control"]
    counts = {entry.skill: entry.count for entry in spec.policy(state, PolicyContext(budget=1000, seed=0)).entries}
    assert spec.uses_state and sum(counts.values()) == 1000
    assert counts["easy"] > 700 and counts.get("hard", 0) <= 1


def test_open_ended_negative_control_imitates_questions_already_answered_right():
    examples = tuple(
        EvaluationRecord(example_id=f"e{i}", skill="s", question=f"q{i}", reference="1", prediction="1" if i < 3 else "2",
                         correct=i < 3, answer_loss=0.1 * i)
        for i in range(10)
    )
    state = OpenEndedState(domain="arithmetic", experiment="x", iteration=1, evaluated_iteration=0, examples=examples)
    plan = ENVIRONMENTS["open_ended"].policies["negative_control"].policy(state, PolicyContext(budget=90, seed=0))
    assert [entry.similar_to[0].example_id for entry in plan.entries][:3] == ["e0", "e1", "e2"]
    assert sum(entry.count for entry in plan.entries if entry.similar_to[0].example_id in {"e0", "e1", "e2"}) >= 27


def test_skill_tree_negative_control_gives_the_most_mastered_tree_the_budget():
    def tree(skill: str, right: int) -> SkillTree:
        nodes = (SubskillNode(name=f"{skill}/a", allocation=0.5, generated=10, performance=None),
                 SubskillNode(name=f"{skill}/b", allocation=0.5, generated=10, performance=None))
        return SkillTree(skill=skill, performance=performance(skill, right), subskills=nodes)

    state = SkillTreeState(domain="arithmetic", experiment="x", iteration=2, evaluated_iteration=1,
                           trees=(tree("mastered", 10), tree("weak", 1)))

    class NoProposals:
        def propose_subskills(self, skill, existing, count, seed):
            return []

    plan = ENVIRONMENTS["skill_tree"].policies["negative_control"].policy(state, PolicyContext(budget=1000, seed=0, proposer=NoProposals()))
    by_tree = {}
    for entry in plan.entries:
        by_tree[entry.parent_skill] = by_tree.get(entry.parent_skill, 0) + entry.count
    assert by_tree["mastered"] > 950


# -- running a suite ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_suite_run_names_a_failed_partition_runs_the_others_and_resumes(tmp_path):
    from dataenvgym_dagster.defs.loop.iterations import iteration_key
    from dataenvgym_dagster.defs.suites import run_suite

    suite = {"domains": ["arithmetic"], "environments": ["skill_list"], "agents": ["weak_skills", "no_state"], "seeds": [0],
             "settings": {"data_budget": 64, "training": {"settings": MICRO_TRAINING}}}
    workspace = make_workspace(tmp_path, {"iterations": 1, "suites": {"micro": suite}})
    # A file where weak_skills' checkpoints go: that partition cannot save its student; no_state can.
    blocked = workspace.home / "checkpoints" / "arithmetic" / "micro.skill_list.weak_skills_seed0"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    lines: list[str] = []
    progress = run_suite(workspace.defs, workspace.instance, workspace.catalog, "micro", say=lines.append)
    assert progress.done == ["arithmetic|micro.skill_list.no_state_seed0"]
    assert list(progress.failed) == ["arithmetic|micro.skill_list.weak_skills_seed0"]
    checkpoint = iteration_key(1, "student_checkpoint").to_user_string()  # the step that failed
    assert progress.failed["arithmetic|micro.skill_list.weak_skills_seed0"].startswith(f"{checkpoint}: FileExistsError: [Errno 17] File exists")
    assert any(line.startswith("✗ arithmetic|micro.skill_list.weak_skills_seed0 failed") for line in lines)
    assert lines[-2].startswith("suite micro: 1/2 done, 0 running, 1 failed, 0 to run")
    assert lines[-1].startswith(f"  failed: arithmetic|micro.skill_list.weak_skills_seed0: {checkpoint}")

    blocked.unlink()  # fixed: the next run does only what is missing
    lines.clear()
    progress = run_suite(workspace.defs, workspace.instance, workspace.catalog, "micro", say=lines.append)
    assert lines[0] == "suite micro: 2 partitions; 1 already finished"
    assert not progress.failed and len(progress.done) == 2


def test_a_suite_sensor_starts_stopped_then_launches_one_run_at_a_time_tagged_with_the_suite(tmp_path):
    from dagster import DagsterRunStatus, DefaultSensorStatus, SkipReason

    from dataenvgym_dagster.defs.suites import SUITE_TAG

    from .conftest import tick

    workspace = make_workspace(tmp_path, {"suites": {"micro": {**SUITE, "settings": {"data_budget": 64}}}})
    sensor = workspace.defs.resolve_sensor_def("suite_micro")
    assert sensor.default_status == DefaultSensorStatus.STOPPED  # started by a person, in the UI
    result = tick(workspace, "suite_micro")
    assert [(r.job_name, r.partition_key, r.tags[SUITE_TAG]) for r in result.run_requests] == [("foundations_job", "arithmetic", "micro")]
    # With that run in flight, the next tick launches nothing and says where the suite stands.
    workspace.instance.create_run_for_job(
        workspace.defs.resolve_job_def("foundations_job"), run_config={}, status=DagsterRunStatus.STARTED,
        tags={"dagster/partition": "arithmetic", SUITE_TAG: "micro"},
    )
    waiting = tick(workspace, "suite_micro")
    assert isinstance(waiting, SkipReason)
    assert waiting.skip_message == "suite micro: 0/12 done, 0 running, 0 failed, 12 to run; 1 run(s) of the suite in flight"


@pytest.mark.slow
def test_when_a_domains_foundations_fail_its_other_partitions_are_not_tried_again(tmp_path):
    from dataenvgym_dagster.defs.suites import run_suite

    suite = {"domains": ["arithmetic"], "environments": ["skill_list"], "agents": ["uniform", "no_state"], "seeds": [0]}
    workspace = make_workspace(tmp_path, {"iterations": 1, "suites": {"micro": suite}})
    blocked = workspace.home / "checkpoints" / "arithmetic" / "base"  # the base student cannot be saved
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    lines: list[str] = []
    progress = run_suite(workspace.defs, workspace.instance, workspace.catalog, "micro", say=lines.append)
    assert not progress.done and len(progress.failed) == 2
    assert progress.failed["arithmetic|micro.skill_list.no_state_seed0"].startswith("the foundations of arithmetic failed: ")
    assert sum(line.startswith("▶") for line in lines) == 1  # one attempt, not one per partition

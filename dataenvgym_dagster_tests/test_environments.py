"""Environments and policies on hand-made states: pure domain logic, no Dagster, no training."""

import json
from collections import Counter

import pytest

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.environments import Observation, PolicyContext, get_environment
from dataenvgym_dagster.domain.environments.base import allocate
from dataenvgym_dagster.domain.environments.open_ended import OpenEndedState
from dataenvgym_dagster.domain.environments.performance import SkillPerformance, learnability
from dataenvgym_dagster.domain.environments.skill_list import SkillListState
from dataenvgym_dagster.domain.environments.skill_tree import SkillTree, SkillTreeState, SubskillNode, exploit, explore
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.domain.types import EvaluationRecord

TAXONOMY = ARITHMETIC.taxonomy
ENGINE = OfflineTeacher(ARITHMETIC)


def record(skill: str, correct: bool, index: int = 0, loss: float = 0.5) -> EvaluationRecord:
    return EvaluationRecord(
        example_id=f"{skill}/{index}", skill=skill, question=f"{index}+1", reference=str(index + 1),
        prediction=str(index + 1) if correct else "0", correct=correct, answer_loss=loss,
    )


def records_with(accuracy: dict[str, float], n: int = 10, loss: dict[str, float] | None = None) -> list[EvaluationRecord]:
    return [
        record(skill, index < round(accuracy.get(skill, 1.0) * n), index, (loss or {}).get(skill, 0.5))
        for skill in TAXONOMY.skills
        for index in range(n)
    ]


def observe(environment: str, accuracy: dict[str, float], iteration: int = 1, previous_state=None, previous_plan=None, loss=None):
    observation = Observation(
        domain="arithmetic", experiment="e", iteration=iteration, taxonomy=TAXONOMY,
        validation=records_with(accuracy, loss=loss), previous_state=previous_state, previous_plan=previous_plan,
    )
    return get_environment(environment).observe(observation)


def plan(environment: str, policy: str, state, budget: int = 1200, seed: int = 0) -> DataGenerationPlan:
    return get_environment(environment).policies[policy].policy(state, PolicyContext(budget=budget, seed=seed, proposer=ENGINE))


def counts(p: DataGenerationPlan) -> dict[str, int]:
    return {entry.skill: entry.count for entry in p.entries}


# -- shared -----------------------------------------------------------------------------------------
def test_allocation_sums_to_the_budget_exactly_and_rejects_nonsense():
    assert sorted(allocate(1000, {"a": 1.0, "b": 1.0, "c": 1.0}).values()) == [333, 333, 334]
    with pytest.raises(ValueError):
        allocate(10, {"a": 0.0})
    with pytest.raises(ValueError):
        allocate(-1, {"a": 1.0})


def test_learnability_prefers_medium_difficulty_to_hopeless_and_mastered_skills():
    def at(correct: int, previous_loss: float | None = None, loss: float = 1.0) -> float:
        return learnability(SkillPerformance(skill="s", n=40, n_correct=correct, answer_loss=loss, previous_answer_loss=previous_loss))

    assert at(14) > at(0) and at(14) > at(40)
    # A skill whose answer loss is falling is worth more than one that is stuck at the same accuracy.
    assert at(0, previous_loss=1.5, loss=1.0) > at(0, previous_loss=1.0, loss=1.0)


@pytest.mark.parametrize("environment", ["open_ended", "skill_list", "skill_tree"])
def test_a_record_of_a_skill_outside_the_taxonomy_is_an_error_not_ignored(environment):
    observation = Observation(
        domain="arithmetic", experiment="e", iteration=1, taxonomy=TAXONOMY, validation=[record("division/long", True)]
    )
    if environment == "open_ended":  # no skills in the state: nothing to check
        assert len(get_environment(environment).observe(observation).examples) == 1
        return
    with pytest.raises(ValueError, match="division/long"):
        get_environment(environment).observe(observation)


@pytest.mark.parametrize(
    ("environment", "policy"),
    [(env, policy) for env in ("open_ended", "skill_list", "skill_tree") for policy, spec in get_environment(env).policies.items() if not spec.needs_chat],
)
def test_every_policy_spends_exactly_the_budget_on_skills_the_engine_knows(environment, policy):
    state = observe(environment, {"addition/three_digit": 0.1, "modulo/by_one_digit": 0.4})
    result = plan(environment, policy, state, budget=777)
    assert result.total == 777
    assert result.environment == environment and result.policy == policy
    assert {entry.skill for entry in result.entries} <= set(TAXONOMY.skills)
    assert result.actions, "every decision is recorded"


# -- Skill-List -------------------------------------------------------------------------------------
def test_skill_list_state_lists_every_skill_with_accuracy_and_the_change_since_last_time():
    first = observe("skill_list", {"addition/one_digit": 0.3})
    second = observe("skill_list", {"addition/one_digit": 0.6}, iteration=2, previous_state=first)
    assert isinstance(second, SkillListState)
    assert [p.skill for p in second.skills] == list(TAXONOMY.skills)
    one_digit = {p.skill: p for p in second.skills}["addition/one_digit"]
    assert one_digit.accuracy == pytest.approx(0.6) and one_digit.reward == pytest.approx(0.3)
    assert second.evaluated_iteration == 1
    assert {row["parent"] for row in second.warehouse_rows()} == set(TAXONOMY.categories)


def test_weak_skills_feeds_the_weakest_but_learnable_prefers_medium_difficulty():
    state = observe("skill_list", {"addition/three_digit": 0.0, "modulo/by_one_digit": 0.5})
    weak, learnable = counts(plan("skill_list", "weak_skills", state)), counts(plan("skill_list", "learnable", state))
    assert weak["addition/three_digit"] > weak["modulo/by_one_digit"]
    assert learnable["modulo/by_one_digit"] > learnable["addition/three_digit"]


def test_state_blind_skill_list_baselines_ignore_the_state_and_differ_from_each_other():
    a = observe("skill_list", {"addition/three_digit": 0.0})
    b = observe("skill_list", {"modulo/by_one_digit": 0.0})
    for policy in ("no_state", "uniform", "random_skill"):
        assert counts(plan("skill_list", policy, a)) == counts(plan("skill_list", policy, b))
    uniform = counts(plan("skill_list", "uniform", a, budget=1200))
    assert set(uniform.values()) == {100}
    by_category = counts(plan("skill_list", "no_state", a, budget=1200))
    assert by_category["modulo/by_one_digit"] == 200 and by_category["addition/one_digit"] == 50  # 6 categories, 4 additions
    random_skill = counts(plan("skill_list", "random_skill", a, budget=1200))
    assert random_skill != uniform and random_skill == counts(plan("skill_list", "random_skill", a, budget=1200))


# -- Open-Ended -------------------------------------------------------------------------------------
def test_open_ended_state_is_the_evaluated_examples_and_its_policy_imitates_errors():
    state = observe("open_ended", {"subtraction/borrow": 0.0})
    assert isinstance(state, OpenEndedState) and len(state.examples) == 120
    result = plan("open_ended", "near_misses", state, budget=500)
    imitated = [entry.similar_to[0] for entry in result.entries]
    assert imitated and all(example.prediction != example.reference for example in imitated)
    assert {entry.skill for entry in result.entries} == {"subtraction/borrow"}


def test_near_misses_prefers_errors_the_student_almost_got_right():
    loss = {"subtraction/borrow": 0.1, "addition/three_digit": 3.0}
    state = observe("open_ended", {"subtraction/borrow": 0.0, "addition/three_digit": 0.0}, loss=loss)
    data = Counter()
    for entry in plan("open_ended", "near_misses", state, budget=400).entries:
        data[entry.skill] += entry.count
    assert data["subtraction/borrow"] > 2 * data["addition/three_digit"] > 0


def test_open_ended_without_state_hides_the_students_answers():
    state = observe("open_ended", {"subtraction/borrow": 0.0})
    result = plan("open_ended", "no_state", state)
    assert all(entry.similar_to[0].prediction == "" for entry in result.entries)


# -- Skill-Tree -------------------------------------------------------------------------------------
def tree(skill: str, nodes: list[tuple[str, float, int, int | None]], reward_from: float | None = None, correct: int = 10) -> SkillTree:
    """A tree whose sub-skills are (name, allocation, generated, correct of 20 or None if unmeasured)."""
    return SkillTree(
        skill=skill,
        performance=SkillPerformance(skill=skill, n=20, n_correct=correct, answer_loss=1.0, previous_accuracy=reward_from),
        subskills=tuple(
            SubskillNode(
                name=name, allocation=allocation, generated=generated,
                performance=None if right is None else SkillPerformance(skill=name, n=20, n_correct=right, answer_loss=1.0),
            )
            for name, allocation, generated, right in nodes
        ),
    )


def tree_state(*trees: SkillTree) -> SkillTreeState:
    return SkillTreeState(domain="arithmetic", experiment="e", iteration=2, evaluated_iteration=1, trees=trees)


def test_the_first_skill_tree_state_is_a_forest_of_empty_trees_one_per_top_level_skill():
    state = observe("skill_tree", {})
    assert [t.skill for t in state.trees] == list(TAXONOMY.categories)
    assert all(not t.subskills for t in state.trees)


def test_the_next_state_grows_the_trees_the_last_plan_chose_with_their_shares_and_data():
    first = observe("skill_tree", {"addition/three_digit": 0.2})
    first_plan = plan("skill_tree", "explore_exploit", first, budget=1200)
    second = observe("skill_tree", {"addition/three_digit": 0.5}, iteration=2, previous_state=first, previous_plan=first_plan)
    addition = {t.skill: t for t in second.trees}["addition"]
    planned = {e.skill: e.count for e in first_plan.entries if e.parent_skill == "addition"}
    assert {n.name: n.generated for n in addition.subskills} == planned
    assert sum(n.allocation for n in addition.subskills) == pytest.approx(1.0)
    assert addition.performance.reward is not None


def test_explore_and_exploit_choose_different_allocations():
    stalled = tree("addition", [("addition/one_digit", 0.5, 100, 19), ("addition/three_digit", 0.5, 100, 8)], reward_from=0.5)
    improving = tree("addition", [("addition/one_digit", 0.5, 100, 19), ("addition/three_digit", 0.5, 100, 8)], reward_from=0.2)
    explored = plan("skill_tree", "explore_exploit", tree_state(stalled))
    exploited = plan("skill_tree", "explore_exploit", tree_state(improving))
    assert [a.action for a in explored.actions] == ["explore"]
    assert [a.action for a in exploited.actions] == ["exploit"]
    assert set(counts(explored)) > {"addition/one_digit", "addition/three_digit"}  # a new sub-skill
    assert set(counts(exploited)) == {"addition/one_digit", "addition/three_digit"}
    assert counts(explored) != counts(exploited)
    rewards = {a.action: a.reward for a in explored.actions + exploited.actions}
    assert rewards["explore"] == pytest.approx(0.0) and rewards["exploit"] == pytest.approx(0.3)


def test_exploit_really_moves_data_from_mastered_to_learnable_subskills():
    before = tree("addition", [("addition/one_digit", 0.5, 100, 20), ("addition/three_digit", 0.5, 100, 9)])
    after = exploit(before)
    assert after["addition/three_digit"] > 0.5 > after["addition/one_digit"]
    assert sum(after.values()) == pytest.approx(1.0)


def test_exploit_evens_out_coverage_of_subskills_the_validation_split_cannot_measure():
    before = tree("algebra", [("algebra/linear", 0.5, 300, None), ("algebra/quadratic", 0.5, 100, None)])
    after = exploit(before)
    assert after["algebra/quadratic"] > after["algebra/linear"]


def test_explore_adds_proposed_subskills_with_an_even_share_and_stops_when_none_remain():
    full = tree("modulo", [("modulo/by_one_digit", 1.0, 100, 10)])
    assert explore(full, ENGINE, width=2, seed=0) is None
    grown = explore(tree("addition", [("addition/one_digit", 1.0, 100, 10)]), ENGINE, width=1, seed=0)
    assert len(grown) == 2 and sorted(grown.values()) == pytest.approx([0.5, 0.5])


def test_every_skill_tree_decision_is_recorded_with_the_allocation_before_and_after():
    state = tree_state(tree("addition", [("addition/one_digit", 0.5, 100, 19), ("addition/three_digit", 0.5, 100, 8)], reward_from=0.2))
    result = plan("skill_tree", "explore_exploit", state)
    (row,) = result.action_rows()
    detail = json.loads(row["detail"])
    assert row["action"] == "exploit" and row["reward"] == pytest.approx(0.3)
    assert detail["before"] == {"addition/one_digit": 0.5, "addition/three_digit": 0.5}
    assert detail["after"] != detail["before"]


def test_skill_tree_without_state_grows_every_tree_and_splits_evenly():
    state = tree_state(tree("addition", [("addition/one_digit", 0.9, 100, 19)], reward_from=0.1), tree("modulo", []))
    result = plan("skill_tree", "no_state", state, budget=1000)
    assert all(a.action == "explore" and a.reward is None for a in result.actions)
    by_tree = Counter()
    for entry in result.entries:
        by_tree[entry.parent_skill] += entry.count
    assert by_tree == {"addition": 500, "modulo": 500}
    assert len({e.count for e in result.entries if e.parent_skill == "addition"}) == 1


def test_a_plan_entry_for_an_unknown_subskill_is_refused_by_the_offline_engine():
    entry = PlanEntry(entry_id="x", skill="addition/imaginary", parent_skill="addition", count=1, rationale="")
    bad = DataGenerationPlan(domain="arithmetic", experiment="e", iteration=1, policy="p", entries=(entry,))
    with pytest.raises(KeyError, match="arithmetic has no skill 'addition/imaginary'"):
        ENGINE.generate(bad, seed=0)


def test_trees_share_the_budget_by_the_learnability_of_the_subskills_they_feed():
    # Same top-level accuracy; one tree has two learnable sub-skills, the other one hopeless sub-skill.
    rich = tree("addition", [("addition/one_digit", 0.5, 100, 10), ("addition/two_digit_carry", 0.5, 100, 8)], reward_from=0.2)
    poor = tree("modulo", [("modulo/by_one_digit", 1.0, 100, 0)], reward_from=0.2)
    result = plan("skill_tree", "explore_exploit", tree_state(rich, poor), budget=1000)
    by_tree = Counter()
    for entry in result.entries:
        by_tree[entry.parent_skill] += entry.count
    assert by_tree["addition"] > 3 * by_tree["modulo"] > 0

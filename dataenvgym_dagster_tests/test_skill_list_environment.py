import pytest

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.environments.skill_list import (
    allocate,
    build_skill_list_state,
    no_state_policy,
    weak_skills_policy,
)
from dataenvgym_dagster.domain.types import EvaluationRecord

TAXONOMY = ARITHMETIC.taxonomy


def record(skill: str, correct: bool, index: int = 0) -> EvaluationRecord:
    return EvaluationRecord(
        example_id=f"{skill}/{index}", skill=skill, question="1+1", reference="2",
        prediction="2" if correct else "3", correct=correct, answer_loss=0.5,
    )


def state_with(accuracy_by_skill: dict[str, float], n: int = 10):
    records = [
        record(skill, index < round(accuracy_by_skill.get(skill, 1.0) * n), index)
        for skill in TAXONOMY.skills
        for index in range(n)
    ]
    return build_skill_list_state(TAXONOMY, records, experiment="e", iteration=2)


def test_state_lists_every_taxonomy_skill_with_its_accuracy():
    state = state_with({"addition/one_digit": 0.3})
    assert [s.skill for s in state.skills] == list(TAXONOMY.skills)
    by_skill = {s.skill: s for s in state.skills}
    assert by_skill["addition/one_digit"].accuracy == pytest.approx(0.3)
    assert by_skill["modulo/by_one_digit"].accuracy == 1.0
    assert state.evaluated_iteration == 1


def test_state_rejects_a_record_whose_skill_is_not_in_the_taxonomy():
    with pytest.raises(ValueError, match="not in the arithmetic taxonomy"):
        build_skill_list_state(TAXONOMY, [record("division/long", True)], experiment="e", iteration=1)


def test_allocation_sums_to_the_budget_exactly():
    counts = allocate(1000, {"a": 1.0, "b": 1.0, "c": 1.0})
    assert sum(counts.values()) == 1000
    assert sorted(counts.values()) == [333, 333, 334]


def test_allocation_rejects_nonsense():
    with pytest.raises(ValueError):
        allocate(10, {"a": 0.0})
    with pytest.raises(ValueError):
        allocate(-1, {"a": 1.0})


def test_weak_skills_policy_gives_weaker_skills_more_data_and_spends_the_budget():
    state = state_with({"addition/three_digit": 0.0, "addition/one_digit": 0.5})
    plan = weak_skills_policy(state, budget=1200)
    counts = {entry.skill: entry.count for entry in plan.entries}
    assert plan.total == 1200
    assert counts["addition/three_digit"] > counts["addition/one_digit"] > counts["comparison/two_digit"] > 0
    assert "0% (0/10) at iteration 1" in next(e.rationale for e in plan.entries if e.skill == "addition/three_digit")


def test_no_state_policy_ignores_the_state():
    plans = [no_state_policy(state_with(accuracies), budget=1200) for accuracies in ({}, {"addition/one_digit": 0.0})]
    assert [e.count for e in plans[0].entries] == [e.count for e in plans[1].entries] == [100] * 12

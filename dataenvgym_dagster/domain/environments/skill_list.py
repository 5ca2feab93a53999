"""The Skill-List environment: per-skill validation performance as the state.

Policies turn the state into a :class:`DataGenerationPlan` that splits the iteration's data
budget across skills. The state-conditioned policy favours weak skills; the no-state twin
spends the same budget blind to the state.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import EvaluationRecord


class SkillPerformance(BaseModel):
    """The student's validation performance on one skill."""

    model_config = ConfigDict(frozen=True)

    skill: str
    n: int
    n_correct: int
    answer_loss: float

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n if self.n else 0.0


class SkillListState(BaseModel):
    """Per-skill performance after ``evaluated_iteration``, which the policy acts on."""

    model_config = ConfigDict(frozen=True)

    domain: str
    experiment: str
    iteration: int
    evaluated_iteration: int
    skills: tuple[SkillPerformance, ...]

    def warehouse_rows(self) -> list[dict[str, object]]:
        return [
            {
                "domain": self.domain,
                "experiment": self.experiment,
                "iteration": self.iteration,
                "evaluated_iteration": self.evaluated_iteration,
                "skill": performance.skill,
                "n": performance.n,
                "accuracy": performance.accuracy,
                "answer_loss": performance.answer_loss,
            }
            for performance in self.skills
        ]


def build_skill_list_state(
    taxonomy: SkillTaxonomy,
    validation: Sequence[EvaluationRecord],
    *,
    experiment: str,
    iteration: int,
) -> SkillListState:
    """Summarise the previous iteration's validation results per skill of the taxonomy.

    Every taxonomy skill appears, in taxonomy order; a record whose skill is not in the
    taxonomy is an error rather than silently ignored.
    """
    by_skill: dict[str, list[EvaluationRecord]] = {skill: [] for skill in taxonomy.skills}
    for record in validation:
        if record.skill not in by_skill:
            raise ValueError(
                f"validation example {record.example_id} has skill {record.skill!r}, "
                f"which is not in the {taxonomy.domain} taxonomy"
            )
        by_skill[record.skill].append(record)
    return SkillListState(
        domain=taxonomy.domain,
        experiment=experiment,
        iteration=iteration,
        evaluated_iteration=iteration - 1,
        skills=tuple(
            SkillPerformance(
                skill=skill,
                n=len(records),
                n_correct=sum(record.correct for record in records),
                answer_loss=sum(record.answer_loss for record in records) / len(records) if records else 0.0,
            )
            for skill, records in by_skill.items()
        ),
    )


def allocate(budget: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``budget`` in proportion to ``weights`` with largest-remainder rounding.

    The counts sum to exactly ``budget``; ties go to the earlier skill, so the result is
    deterministic.
    """
    if budget < 0:
        raise ValueError(f"data budget must be non-negative, got {budget}")
    total = sum(weights.values())
    if not weights or total <= 0:
        raise ValueError("cannot allocate a data budget over no skills or all-zero weights")
    shares = {skill: budget * weight / total for skill, weight in weights.items()}
    counts = {skill: int(share) for skill, share in shares.items()}
    leftover = budget - sum(counts.values())
    order = sorted(shares, key=lambda skill: (counts[skill] - shares[skill], list(shares).index(skill)))
    for skill in order[:leftover]:
        counts[skill] += 1
    return counts


def weak_skills_policy(state: SkillListState, budget: int, floor: float = 0.05) -> DataGenerationPlan:
    """Allocate the budget in proportion to each skill's validation error rate.

    ``floor`` keeps a small share for mastered skills so that they are not forgotten.
    """
    weights = {performance.skill: max(1.0 - performance.accuracy, floor) for performance in state.skills}
    by_skill = {performance.skill: performance for performance in state.skills}
    return _plan(
        state,
        "weak_skills",
        allocate(budget, weights),
        lambda skill: f"validation accuracy {by_skill[skill].accuracy:.0%} "
        f"({by_skill[skill].n_correct}/{by_skill[skill].n}) at iteration {state.evaluated_iteration}",
    )


def no_state_policy(state: SkillListState, budget: int) -> DataGenerationPlan:
    """The same budget split evenly over the skills, without looking at performance."""
    return _plan(
        state,
        "no_state",
        allocate(budget, {performance.skill: 1.0 for performance in state.skills}),
        lambda skill: "even split; the policy does not see the state",
    )


def _plan(state: SkillListState, policy: str, counts: dict[str, int], rationale) -> DataGenerationPlan:
    return DataGenerationPlan(
        domain=state.domain,
        experiment=state.experiment,
        iteration=state.iteration,
        policy=policy,
        entries=tuple(
            PlanEntry(entry_id=f"iteration_{state.iteration}/{skill}", skill=skill, count=count, rationale=rationale(skill))
            for skill, count in counts.items()
            if count > 0
        ),
    )


SKILL_LIST_POLICIES = {"weak_skills": weak_skills_policy, "no_state": no_state_policy}

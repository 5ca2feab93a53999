"""The Skill-List environment: per-skill validation performance as the state.

Policies split the iteration's data budget across the taxonomy's skills. ``learnable`` and
``weak_skills`` read the state; ``no_state``, ``uniform`` and ``random_skill`` spend the same
budget blind to it.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from dataenvgym_dagster.domain.environments.base import (
    EnvironmentState,
    Observation,
    PolicyContext,
    PolicySpec,
    allocate,
    make_plan,
)
from dataenvgym_dagster.domain.environments.performance import (
    SkillPerformance,
    describe,
    group_by_skill,
    learnability,
    summarise,
)
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry, PolicyAction

NAME = "skill_list"


class SkillListState(EnvironmentState):
    """Per-skill performance after ``evaluated_iteration``, with each skill's category."""

    categories: dict[str, str]  # skill -> category
    skills: tuple[SkillPerformance, ...]

    def warehouse_rows(self) -> list[dict[str, object]]:
        return [
            self.row(
                NAME, kind="skill", node=p.skill, parent=self.categories.get(p.skill), n=p.n, accuracy=p.accuracy,
                answer_loss=p.answer_loss, previous_accuracy=p.previous_accuracy, allocation=None, generated_so_far=None,
            )
            for p in self.skills
        ]

    def render(self) -> str:
        lines = [self.header(NAME), "Skills (category / skill: validation performance):"]
        lines += [f"- {p.skill}: {describe(p)}" for p in self.skills]
        return "\n".join(lines)


def observe(observation: Observation) -> SkillListState:
    """Summarise the last validation results per skill of the taxonomy, linked to the last state."""
    previous = observation.previous_state
    earlier = {p.skill: p for p in previous.skills} if isinstance(previous, SkillListState) else {}
    grouped = group_by_skill(observation.taxonomy.skills, observation.validation)
    return SkillListState(
        domain=observation.domain,
        experiment=observation.experiment,
        iteration=observation.iteration,
        evaluated_iteration=observation.iteration - 1,
        categories={skill: observation.taxonomy.category_of(skill) for skill in observation.taxonomy.skills},
        skills=tuple(summarise(skill, records, earlier.get(skill)) for skill, records in grouped.items()),
    )


def _describe(p: SkillPerformance) -> str:
    trend = "" if p.reward is None else f", {p.reward:+.0%} since last, loss {p.previous_answer_loss:.2f}→{p.answer_loss:.2f}"
    return f"validation accuracy {p.accuracy:.0%} ({p.n_correct}/{p.n}){trend}"


def _plan(state: SkillListState, policy: str, counts: dict[str, int], rationale, weights=None) -> DataGenerationPlan:
    by_skill = {p.skill: p for p in state.skills}
    entries = [
        PlanEntry(entry_id=f"iteration_{state.iteration}/{skill}", skill=skill, count=count, rationale=rationale(skill))
        for skill, count in counts.items()
    ]
    actions = [
        PolicyAction(
            skill=skill, action="allocate", reward=by_skill[skill].reward, observed_accuracy=by_skill[skill].accuracy,
            detail={"count": count, **({"weight": round(weights[skill], 4)} if weights else {})},
        )
        for skill, count in counts.items()
    ]
    return make_plan(state, NAME, policy, entries, actions)


def learnable_policy(state: SkillListState, context: PolicyContext) -> DataGenerationPlan:
    """Budget in proportion to each skill's :func:`learnability`: medium-difficulty and improving skills first."""
    weights = {p.skill: learnability(p) for p in state.skills}
    by_skill = {p.skill: p for p in state.skills}
    return _plan(
        state, "learnable", allocate(context.budget, weights),
        lambda skill: f"learnability {weights[skill]:.2f}: {_describe(by_skill[skill])}", weights,
    )


def weak_skills_policy(state: SkillListState, context: PolicyContext, floor: float = 0.05) -> DataGenerationPlan:
    """Budget in proportion to each skill's validation error rate (``floor`` keeps mastered skills fed)."""
    weights = {p.skill: max(1.0 - p.accuracy, floor) for p in state.skills}
    by_skill = {p.skill: p for p in state.skills}
    return _plan(state, "weak_skills", allocate(context.budget, weights), lambda skill: _describe(by_skill[skill]), weights)


def no_state_policy(state: SkillListState, context: PolicyContext) -> DataGenerationPlan:
    """What an agent that sees the taxonomy but not the student does: even per category, then per skill."""
    per_category = Counter(state.categories.values())
    weights = {p.skill: 1.0 / per_category[state.categories[p.skill]] for p in state.skills}
    return _plan(state, "no_state", allocate(context.budget, weights), lambda skill: "even over categories; the policy does not see the state")


def uniform_policy(state: SkillListState, context: PolicyContext) -> DataGenerationPlan:
    """The same budget split evenly over the skills."""
    weights = {p.skill: 1.0 for p in state.skills}
    return _plan(state, "uniform", allocate(context.budget, weights), lambda skill: "even over skills")


def random_skill_policy(state: SkillListState, context: PolicyContext) -> DataGenerationPlan:
    """Every example of the budget goes to a skill drawn at random (seeded)."""
    rng = context.rng(f"random_skill:{state.iteration}")
    skills = [p.skill for p in state.skills]
    drawn = Counter(rng.choice(skills) for _ in range(context.budget))
    return _plan(state, "random_skill", {skill: drawn[skill] for skill in skills}, lambda skill: "skill drawn at random per example")


class SkillListEnvironment:
    name = NAME
    state_type = SkillListState
    observe = staticmethod(observe)
    actions: ClassVar[dict[str, str]] = {
        "allocate": "give a taxonomy skill a number of examples (detail: count, optional weight)",
    }
    policies: ClassVar[dict[str, PolicySpec]] = {
        "learnable": PolicySpec(learnable_policy, True, "learnability: room to improve × closeness × loss progress"),
        "weak_skills": PolicySpec(weak_skills_policy, True, "in proportion to validation error rate"),
        "no_state": PolicySpec(no_state_policy, False, "even over categories, then skills"),
        "uniform": PolicySpec(uniform_policy, False, "even over skills"),
        "random_skill": PolicySpec(random_skill_policy, False, "a random skill per example"),
    }

"""The environment's rules for a plan: the budget, the skills it may name and the actions it offers.

A policy proposes; the environment decides whether the plan may run. A plan that breaks a rule is
refused as a whole, with every reason, and never clipped or repaired into another plan: the
numbers in the warehouse are always the agent's own.
"""

from __future__ import annotations

from collections import Counter

from dataenvgym_dagster.domain.environments.base import Environment, EnvironmentState
from dataenvgym_dagster.domain.environments.open_ended import OpenEndedState
from dataenvgym_dagster.domain.environments.skill_tree import SkillTreeState
from dataenvgym_dagster.domain.plans import DataGenerationPlan


def plan_problems(environment: Environment, state: EnvironmentState, plan: DataGenerationPlan, budget: int) -> list[str]:
    """Every rule ``plan`` breaks for ``state`` under ``budget``, as sentences; empty when it may run."""
    problems = []
    for field in ("domain", "experiment", "iteration"):
        if getattr(plan, field) != getattr(state, field):
            problems.append(f"the plan is for {field} {getattr(plan, field)!r}, but the state is of {getattr(state, field)!r}")
    if plan.environment != environment.name:
        problems.append(f"the plan names environment {plan.environment!r}, but the experiment's is {environment.name!r}")
    if plan.total > budget:
        problems.append(f"the plan asks for {plan.total} examples, over the budget of {budget}")
    if plan.total == 0:
        problems.append("the plan asks for no examples")
    repeated = [entry_id for entry_id, n in Counter(entry.entry_id for entry in plan.entries).items() if n > 1]
    if repeated:
        problems.append(f"entry id {repeated[0]!r} is used by more than one entry")
    unoffered = sorted({action.action for action in plan.actions} - set(environment.actions))
    if unoffered:
        problems.append(
            f"action {unoffered[0]!r} is not offered by {environment.name} (offered: {', '.join(environment.actions)})"
        )
    known, nodes = _vocabulary(state)
    for entry in plan.entries:
        if isinstance(state, SkillTreeState):
            if entry.parent_skill not in known:
                problems.append(
                    f"entry {entry.entry_id!r} grows sub-skill {entry.skill!r} under {entry.parent_skill!r}, "
                    f"which is not a top-level skill of the state ({_some(known)})"
                )
        elif entry.skill not in known:
            problems.append(f"entry {entry.entry_id!r} names skill {entry.skill!r}, which is not in the taxonomy ({_some(known)})")
        unknown_examples = [example.example_id for example in entry.similar_to if example.example_id not in nodes]
        if unknown_examples:
            problems.append(f"entry {entry.entry_id!r} imitates example {unknown_examples[0]!r}, which is not in the state")
    for action in plan.actions:
        if action.skill not in nodes and action.skill not in known:
            problems.append(f"action {action.action!r} is about {action.skill!r}, which is not in the state")
    return problems


def _vocabulary(state: EnvironmentState) -> tuple[set[str], set[str]]:
    """The skills a plan's entries may name, and the nodes (examples, skills) its actions may be about."""
    if isinstance(state, SkillTreeState):
        trees = {tree.skill for tree in state.trees}
        return trees, trees
    if isinstance(state, OpenEndedState):
        return {record.skill for record in state.examples}, {record.example_id for record in state.examples}
    skills = {p.skill for p in getattr(state, "skills", ())}
    return skills, skills


def _some(names: set[str], shown: int = 6) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:shown]) + (f" and {len(ordered) - shown} more" if len(ordered) > shown else "")

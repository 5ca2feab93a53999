"""The Skill-Tree environment: a forest of skill trees, one per top-level skill.

Each tree's node is a top-level skill (a taxonomy category) with its sub-skills; every
sub-skill has a share of the tree's data (its allocation), the data generated for it so far
and, when the taxonomy measures it, its own validation performance. Each iteration the policy
chooses per tree:

* **explore**: grow the tree, asking the engine to propose new sub-skills, each with an
  initial share;
* **exploit**: rebalance the shares among existing sub-skills by how learnable each is (or,
  for sub-skills the validation split cannot measure, towards the least-covered ones).

The reward of a tree is the change in its top-level skill's validation accuracy since the
last iteration; every (state, action, reward) is recorded in the plan's actions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.environments.base import (
    EnvironmentState,
    Observation,
    PolicyContext,
    PolicySpec,
    SubskillProposer,
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

NAME = "skill_tree"


class SubskillNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    allocation: float  # share of the tree's data, summing to 1 within a tree
    generated: int  # examples requested for it so far
    performance: SkillPerformance | None  # None when the validation split does not measure it


class SkillTree(BaseModel):
    model_config = ConfigDict(frozen=True)

    skill: str
    performance: SkillPerformance
    subskills: tuple[SubskillNode, ...] = ()

    @property
    def allocations(self) -> dict[str, float]:
        return {node.name: node.allocation for node in self.subskills}


class SkillTreeState(EnvironmentState):
    """The forest after ``evaluated_iteration``: one tree per top-level skill."""

    trees: tuple[SkillTree, ...]

    def warehouse_rows(self) -> list[dict[str, object]]:
        def row(kind: str, node: str, parent: str | None, p: SkillPerformance | None, allocation=None, generated=None):
            return self.row(
                NAME, kind=kind, node=node, parent=parent, n=p.n if p else None, accuracy=p.accuracy if p else None,
                answer_loss=p.answer_loss if p else None, previous_accuracy=p.previous_accuracy if p else None,
                allocation=allocation, generated_so_far=generated,
            )

        rows = []
        for tree in self.trees:
            rows.append(row("skill", tree.skill, None, tree.performance, 1.0, sum(n.generated for n in tree.subskills)))
            rows += [row("subskill", n.name, tree.skill, n.performance, n.allocation, n.generated) for n in tree.subskills]
        return rows

    def render(self) -> str:
        lines = [self.header(NAME), "Skill trees (top-level skill, then its sub-skills with their share of the tree's data):"]
        for tree in self.trees:
            lines.append(f"- {tree.skill}: {describe(tree.performance)}")
            for node in tree.subskills:
                measured = describe(node.performance) if node.performance and node.performance.n else "not measured by the validation split"
                lines.append(f"  - {node.name}: share {node.allocation:.0%}, {node.generated} examples so far, {measured}")
            if not tree.subskills:
                lines.append("  (no sub-skills yet)")
        return "\n".join(lines)


def observe(observation: Observation) -> SkillTreeState:
    """Top-level performance per category, and the sub-skills the last plan grew, with their shares."""
    taxonomy = observation.taxonomy
    leaves = group_by_skill(taxonomy.skills, observation.validation)
    previous = observation.previous_state if isinstance(observation.previous_state, SkillTreeState) else None
    earlier_trees = {tree.skill: tree for tree in previous.trees} if previous else {}
    earlier_nodes = {node.name: node for tree in earlier_trees.values() for node in tree.subskills}
    planned: dict[str, dict[str, int]] = defaultdict(dict)
    for entry in observation.previous_plan.entries if observation.previous_plan else ():
        planned[entry.parent_skill or taxonomy.category_of(entry.skill)][entry.skill] = entry.count

    trees = []
    for category, skills in taxonomy.categories.items():
        earlier = earlier_trees.get(category)
        performance = summarise(category, [r for skill in skills for r in leaves[skill]], earlier.performance if earlier else None)
        counts = planned.get(category, {})
        total = sum(counts.values())
        nodes = []
        for name, count in counts.items():
            before = earlier_nodes.get(name)
            measured = summarise(name, leaves[name], before.performance if before else None) if name in leaves else None
            nodes.append(
                SubskillNode(name=name, allocation=count / total if total else 1 / len(counts),
                             generated=(before.generated if before else 0) + count, performance=measured)
            )
        trees.append(SkillTree(skill=category, performance=performance, subskills=tuple(nodes)))
    return SkillTreeState(
        domain=observation.domain, experiment=observation.experiment, iteration=observation.iteration,
        evaluated_iteration=observation.iteration - 1, trees=tuple(trees),
    )


# -- the organisation step: applying an action to a tree ------------------------------------------
def explore(tree: SkillTree, proposer: SubskillProposer, width: int, seed: int) -> dict[str, float] | None:
    """The tree's shares after adding up to ``width`` proposed sub-skills, or None if none were proposed.

    A new sub-skill starts with the share an even split would give it; existing shares shrink
    in proportion.
    """
    proposed = proposer.propose_subskills(tree.skill, [n.name for n in tree.subskills], width, seed)
    proposed = [name for name in dict.fromkeys(proposed) if name not in tree.allocations]
    if not proposed:
        return None
    size = len(tree.subskills) + len(proposed)
    kept = 1 - len(proposed) / size
    shares = {name: share * kept for name, share in tree.allocations.items()}
    shares.update({name: 1 / size for name in proposed})
    return shares


def exploit(tree: SkillTree, rate: float = 1.0, mastered: float = 0.95, minimum: float = 0.05) -> dict[str, float]:
    """The tree's shares rebalanced towards sub-skills with more to learn, away from mastered ones.

    Each share is multiplied by ``exp(rate × (score − mean score))`` and renormalised, where the
    score is the sub-skill's :func:`learnability` if the validation split measures it, and
    otherwise how far its data lags behind an even split (so coverage evens out). A measured
    sub-skill at ``mastered`` accuracy or more keeps only ``minimum`` of the tree.
    """
    nodes = tree.subskills
    total_generated = sum(node.generated for node in nodes) or 1
    scores = {
        node.name: learnability(node.performance) if node.performance and node.performance.n
        else 1 / len(nodes) - node.generated / total_generated
        for node in nodes
    }
    mean = sum(scores.values()) / len(scores)
    raw = {node.name: max(node.allocation, 1e-6) * math.exp(rate * (scores[node.name] - mean)) for node in nodes}
    for node in nodes:
        if node.performance and node.performance.n and node.performance.accuracy >= mastered and len(nodes) > 1:
            raw[node.name] = 0.0
    total = sum(raw.values())
    shares = {name: value / total for name, value in raw.items()}
    floored = {name: max(share, minimum) for name, share in shares.items()}
    norm = sum(floored.values())
    return {name: share / norm for name, share in floored.items()}


# -- policies ------------------------------------------------------------------------------------------
def _entries(state: SkillTreeState, budgets: dict[str, int], shares: dict[str, dict[str, float]], rationale) -> list[PlanEntry]:
    entries = []
    for tree in state.trees:
        if not shares.get(tree.skill) or not budgets.get(tree.skill):
            continue
        for name, count in allocate(budgets[tree.skill], shares[tree.skill]).items():
            entries.append(
                PlanEntry(entry_id=f"iteration_{state.iteration}/{name}", skill=name, parent_skill=tree.skill,
                          count=count, rationale=rationale(tree, name))
            )
    return entries


def _require(context: PolicyContext) -> SubskillProposer:
    if context.proposer is None:
        raise ValueError("Skill-Tree policies need a data generation engine to propose sub-skills")
    return context.proposer


def explore_exploit_policy(
    state: SkillTreeState, context: PolicyContext, stall: float = 0.02, width: int = 2
) -> DataGenerationPlan:
    """Per tree: explore when it is empty or its reward stalled (≤ ``stall``), otherwise exploit.

    Trees share the budget in proportion to :func:`tree_learnability`.
    """
    proposer = _require(context)
    shares: dict[str, dict[str, float]] = {}
    actions = []
    for tree in state.trees:
        reward = tree.performance.reward
        grown = None
        if not tree.subskills or reward is None or reward <= stall:
            grown = explore(tree, proposer, width if not tree.subskills else 1, context.seed + state.iteration)
        if grown is not None:
            action, after = "explore", grown
        elif tree.subskills:
            action, after = "exploit", exploit(tree)
        else:
            action, after = "none", {}
        shares[tree.skill] = after
        actions.append(_action(tree, action, after))
    weights = {tree.skill: tree_learnability(tree, shares[tree.skill]) for tree in state.trees if shares[tree.skill]}
    budgets = allocate(context.budget, weights) if weights else {}
    entries = _entries(state, budgets, shares, lambda tree, name: _rationale(tree, name, shares[tree.skill][name]))
    return make_plan(state, NAME, "explore_exploit", entries, actions)


def tree_learnability(tree: SkillTree, shares: dict[str, float]) -> float:
    """How much data a tree can use: the summed learnability of the sub-skills it will feed.

    A category's average hides a learnable sub-skill behind a hopeless one, and a tree with more
    learnable sub-skills can absorb more data. A sub-skill the validation split does not measure
    (a new proposal, or one an LLM named) counts with its tree's own learnability.
    """
    measured = {node.name: node.performance for node in tree.subskills if node.performance and node.performance.n}
    return sum(learnability(measured[name]) if name in measured else learnability(tree.performance) for name in shares)


def no_state_policy(state: SkillTreeState, context: PolicyContext, width: int = 2) -> DataGenerationPlan:
    """Grow every tree by a sub-skill each iteration while the engine proposes one; even shares and budgets."""
    proposer = _require(context)
    shares, actions = {}, []
    for tree in state.trees:
        grown = explore(tree, proposer, width if not tree.subskills else 1, context.seed + state.iteration)
        names = list(grown or tree.allocations)
        shares[tree.skill] = {name: 1 / len(names) for name in names} if names else {}
        actions.append(_action(tree, "explore" if grown else "keep", shares[tree.skill], reward_seen=False))
    budgets = allocate(context.budget, {skill: 1.0 for skill, share in shares.items() if share}) if any(shares.values()) else {}
    entries = _entries(state, budgets, shares, lambda tree, name: "even split; the policy does not see the state")
    return make_plan(state, NAME, "no_state", entries, actions)


def _action(tree: SkillTree, action: str, after: dict[str, float], reward_seen: bool = True) -> PolicyAction:
    return PolicyAction(
        skill=tree.skill, action=action, reward=tree.performance.reward if reward_seen else None,
        observed_accuracy=tree.performance.accuracy if reward_seen else None,
        detail={
            "before": {k: round(v, 4) for k, v in tree.allocations.items()},
            "after": {k: round(v, 4) for k, v in after.items()},
        },
    )


def _rationale(tree: SkillTree, name: str, share: float) -> str:
    reward = "first look" if tree.performance.reward is None else f"reward {tree.performance.reward:+.1%}"
    return f"{share:.0%} of {tree.skill} (accuracy {tree.performance.accuracy:.0%}, {reward})"


class SkillTreeEnvironment:
    name = NAME
    state_type = SkillTreeState
    observe = staticmethod(observe)
    actions: ClassVar[dict[str, str]] = {
        "explore": "grow a tree with new sub-skills, each with an initial share (detail: before, after)",
        "exploit": "change the shares among a tree's existing sub-skills (detail: before, after)",
        "keep": "leave a tree's shares as they are",
        "none": "give a tree no data this iteration",
    }
    policies: ClassVar[dict[str, PolicySpec]] = {
        "explore_exploit": PolicySpec(explore_exploit_policy, True, "explore stalled trees, exploit the rest by learnability"),
        "no_state": PolicySpec(no_state_policy, False, "grow every tree each iteration, even shares"),
    }

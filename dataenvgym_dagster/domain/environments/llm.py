"""The paper's LLM agents: an ``llm`` policy per environment that asks a chat model for the plan.

* Open-Ended: the model reads the student's errors (question, student answer, reference) and
  writes a data generation spec per error it chooses, with a number of examples;
* Skill-List: the model reads per-skill accuracy and its change, and allocates the budget over
  skills with a rationale per skill;
* Skill-Tree: the model chooses, per top-level skill, explore (how many new sub-skills, their
  initial share) or exploit (new shares), with the tree's number of examples.

The model's decision becomes a plan that the environment checks like any other
(:func:`plan_problems`). A refused or unparsable reply is sent back with the reasons, up to
``DECISION_ATTEMPTS`` tries; each refusal is recorded in ``teacher_calls`` with the reply, and
after the last one the policy raises: never a heuristic plan in the model's place.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.environments import open_ended, prompts, skill_list, skill_tree
from dataenvgym_dagster.domain.environments.base import EnvironmentState, PolicyContext, PolicySpec, allocate, make_plan
from dataenvgym_dagster.domain.environments.open_ended import OpenEndedState
from dataenvgym_dagster.domain.environments.skill_list import SkillListState
from dataenvgym_dagster.domain.environments.skill_tree import SkillTreeState
from dataenvgym_dagster.domain.environments.validation import plan_problems
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry, PolicyAction, SimilarExample
from dataenvgym_dagster.domain.teachers.chat import ChatRequest

DECISION_ATTEMPTS = 3


class LlmDecisionError(RuntimeError):
    """The model's replies were refused (or did not parse) ``DECISION_ATTEMPTS`` times."""


# -- replies ----------------------------------------------------------------------------------------
class SkillAllocation(BaseModel):
    skill: str = Field(description="A skill of the state, by its exact name.")
    examples: int = Field(ge=0, description="How many new training examples of this skill to write.")
    rationale: str


class SkillListDecision(BaseModel):
    model_config = ConfigDict(title="SkillListDecision")

    allocations: list[SkillAllocation]


class TreeDecision(BaseModel):
    skill: str = Field(description="A top-level skill of the state, by its exact name.")
    action: Literal["explore", "exploit"]
    examples: int = Field(ge=0, description="How many new training examples this tree gets.")
    new_subskills: int = Field(0, ge=0, le=5, description="explore: how many new sub-skills to add.")
    new_share: float = Field(0.0, ge=0, le=1, description="explore: each new sub-skill's initial share; 0 means an even split.")
    shares: dict[str, float] = Field(default_factory=dict, description="exploit: the new share of each existing sub-skill.")
    rationale: str


class SkillTreeDecision(BaseModel):
    model_config = ConfigDict(title="SkillTreeDecision")

    trees: list[TreeDecision]


class ExampleSpec(BaseModel):
    example_id: str = Field(description="The id of an error in the state.")
    examples: int = Field(ge=0, description="How many new examples like it to write.")
    spec: str = Field(description="What the new examples practise and how they vary.")


class OpenEndedDecision(BaseModel):
    model_config = ConfigDict(title="OpenEndedDecision")

    specs: list[ExampleSpec]


# -- decisions as plans ------------------------------------------------------------------------------
def _skill_list_plan(state: SkillListState, decision: SkillListDecision, context: PolicyContext) -> tuple[list[PlanEntry], list[PolicyAction], list[str]]:
    by_skill = {p.skill: p for p in state.skills}
    entries, actions = [], []
    for allocation in decision.allocations:
        entries.append(PlanEntry(entry_id=f"iteration_{state.iteration}/{allocation.skill}", skill=allocation.skill,
                                 count=allocation.examples, rationale=allocation.rationale))
        seen = by_skill.get(allocation.skill)
        actions.append(PolicyAction(skill=allocation.skill, action="allocate", reward=seen.reward if seen else None,
                                    observed_accuracy=seen.accuracy if seen else None, detail={"count": allocation.examples}))
    return entries, actions, []


def _skill_tree_plan(state: SkillTreeState, decision: SkillTreeDecision, context: PolicyContext) -> tuple[list[PlanEntry], list[PolicyAction], list[str]]:
    trees = {tree.skill: tree for tree in state.trees}
    entries, actions, problems = [], [], []
    for choice in decision.trees:
        tree = trees.get(choice.skill)
        if tree is None:
            problems.append(f"{choice.skill!r} is not a top-level skill of the state (choose from {', '.join(trees)})")
            continue
        before = tree.allocations
        if choice.action == "explore":
            if context.proposer is None:
                raise ValueError("the Skill-Tree llm policy needs a data generation engine to propose sub-skills")
            proposed = context.proposer.propose_subskills(tree.skill, list(before), choice.new_subskills, context.seed + state.iteration)
            new = [name for name in dict.fromkeys(proposed) if name not in before]
            share = choice.new_share or 1 / (len(before) + len(new) or 1)
            if new and share * len(new) > 1:
                problems.append(f"explore {choice.skill!r}: {len(new)} new sub-skills at {share:.0%} each is more than the whole tree")
                continue
            after = {name: value * (1 - share * len(new)) for name, value in before.items()} | {name: share for name in new}
        else:
            unknown = sorted(set(choice.shares) - set(before))
            if not before:
                problems.append(f"exploit {choice.skill!r}: the tree has no sub-skills yet; explore it first")
                continue
            if unknown:
                problems.append(f"exploit {choice.skill!r}: {unknown[0]!r} is not a sub-skill of the tree ({', '.join(before)})")
                continue
            after = {name: max(0.0, choice.shares.get(name, 0.0)) for name in before}
        total = sum(after.values())
        actions.append(PolicyAction(
            skill=tree.skill, action=choice.action, reward=tree.performance.reward, observed_accuracy=tree.performance.accuracy,
            detail={"before": {k: round(v, 4) for k, v in before.items()}, "after": {k: round(v, 4) for k, v in after.items()},
                    "examples": choice.examples, "rationale": choice.rationale},
        ))
        if choice.examples and total <= 0:
            problems.append(f"{choice.action} {choice.skill!r}: every share is 0, so its {choice.examples} examples have nowhere to go")
            continue
        if choice.examples:
            entries += [
                PlanEntry(entry_id=f"iteration_{state.iteration}/{name}", skill=name, parent_skill=tree.skill, count=count,
                          rationale=f"{choice.action}: {choice.rationale}")
                for name, count in allocate(choice.examples, after).items()
            ]
    return entries, actions, problems


def _open_ended_plan(state: OpenEndedState, decision: OpenEndedDecision, context: PolicyContext) -> tuple[list[PlanEntry], list[PolicyAction], list[str]]:
    examples = {record.example_id: record for record in state.examples}
    entries, actions, problems = [], [], []
    for spec in decision.specs:
        record = examples.get(spec.example_id)
        if record is None:
            problems.append(f"example id {spec.example_id!r} is not in the state")
            continue
        entries.append(PlanEntry(
            entry_id=f"iteration_{state.iteration}/{record.example_id}", skill=record.skill, count=spec.examples, rationale=spec.spec,
            similar_to=(SimilarExample(example_id=record.example_id, question=record.question, reference=record.reference,
                                       prediction=record.prediction, verdict=record.verdict),),
        ))
        actions.append(PolicyAction(skill=record.example_id, action="select", reward=None, observed_accuracy=float(record.correct),
                                    detail={"count": spec.examples}))
    return entries, actions, problems


# -- the policy ---------------------------------------------------------------------------------------
_DECISIONS = {
    skill_list.NAME: (SkillListDecision, _skill_list_plan, skill_list.SkillListEnvironment),
    skill_tree.NAME: (SkillTreeDecision, _skill_tree_plan, skill_tree.SkillTreeEnvironment),
    open_ended.NAME: (OpenEndedDecision, _open_ended_plan, open_ended.OpenEndedEnvironment),
}


def _version() -> str:
    """The prompt's version and a hash of this module and the prompts: a change to either is a new agent."""
    sources = b"".join(Path(module.__file__).read_bytes() for module in (prompts,)) + Path(__file__).read_bytes()
    return f"{prompts.PROMPT_VERSION}-{hashlib.sha256(sources).hexdigest()[:8]}"


class LlmPolicy:
    """``policy(state, context)`` for one environment: asks ``context.chat`` for the decision, checks it, retries."""

    uses_state = True

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self.reply_model, self.to_plan, self.env = _DECISIONS[environment]
        self.version = _version()

    def __call__(self, state: EnvironmentState, context: PolicyContext) -> DataGenerationPlan:
        if context.chat is None:
            raise ValueError("the llm policy needs the teacher's chat client (PolicyContext.chat); the loop gives it one")
        messages = (prompts.system_message(self.reply_model), prompts.decide_message(self.environment, state.render(), context.budget))
        where = f"{state.domain}|{state.experiment} iteration {state.iteration}"
        for attempt in range(1, DECISION_ATTEMPTS + 1):
            request = ChatRequest(purpose=f"policy:{self.environment}", messages=messages, seed=context.seed, prompt_version=prompts.PROMPT_VERSION)
            (reply,) = context.chat.complete([request], self.reply_model)
            if not reply.ok:
                reasons, shown = [f"the reply is not a JSON object of the schema ({reply.error})"], ""
            else:
                shown = reply.value.model_dump_json()
                entries, actions, reasons = self.to_plan(state, reply.value, context)
                plan = make_plan(state, self.environment, "llm", entries, actions)
                reasons += plan_problems(self.env(), state, plan, context.budget)
                if not reasons:
                    return plan
            reject = getattr(context.chat, "reject", None)
            if reject is not None:
                reject(request, reply.prompt_hash, shown, reasons)
            if attempt == DECISION_ATTEMPTS:
                raise LlmDecisionError(
                    f"the llm policy of {self.environment} was refused {DECISION_ATTEMPTS} times on {where}; last reasons: "
                    f"{'; '.join(reasons)}; last reply: {shown or '(none parsed)'}. The replies and reasons are in teacher_calls"
                )
            messages = (*messages, *prompts.retry_messages(shown or "(not JSON)", reasons))
        raise AssertionError("unreachable")


LLM_POLICIES = {
    name: PolicySpec(
        LlmPolicy(name), True, "the paper's LLM agent: a chat model reads the state's text rendering and decides the plan", needs_chat=True
    )
    for name in _DECISIONS
}

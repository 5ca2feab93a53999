"""The public agent interface: everything a policy or a data generation engine needs, in one import.

These are the types the teaching loop itself uses (re-exported, not copies)::

    from dataenvgym_dagster.agents import DataGenerationPlan, PlanEntry, PolicyAction, PolicyContext, SkillListState

    def policy(state: SkillListState, context: PolicyContext) -> DataGenerationPlan:
        weakest = min(state.skills, key=lambda p: p.accuracy)
        return DataGenerationPlan(
            domain=state.domain, experiment=state.experiment, iteration=state.iteration,
            environment="skill_list", policy="weakest",
            entries=[PlanEntry(entry_id="weakest", skill=weakest.skill, count=context.budget, rationale="lowest accuracy")],
            actions=[PolicyAction(skill=weakest.skill, action="allocate", reward=weakest.reward, detail={"count": context.budget})],
        )
    policy.environment = "skill_list"   # optional: the environments it is written for
    policy.uses_state = True            # optional (default True): the paper's With State / No State

**A policy** is any callable ``policy(state, context) -> DataGenerationPlan``. ``state`` is the
experiment's environment's state (:class:`OpenEndedState`, :class:`SkillListState` or
:class:`SkillTreeState`); ``context`` (:class:`PolicyContext`) holds the budget, the iteration's
seed, the engine's sub-skill proposer and, for agents that ask an LLM, the teacher's chat client.
The environment, not the agent, enforces the rules (:func:`plan_problems`): a plan over the
budget, naming an unknown skill or an action the environment does not offer is refused whole,
with its reasons in ``policy_actions``.

**An engine** implements :class:`DataGenerationEngine` (``name``, ``generate`` returning a
:class:`GenerationResult`, ``propose_subskills``) and is built by calling the named class or
factory with the domain and the catalogue's options.

**Naming an agent in the catalogue**: ``policy: learnable`` (built-in), ``policy: my_curriculum``
(an entry point of the ``dataenvgym.policies`` group), ``policy: my_agents.curriculum:policy``
(an import path); likewise ``teacher: offline`` / ``teacher: my_engine`` (group
``dataenvgym.engines``) / ``teacher: {engine: my_agents.engines:MyEngine, options: {...}}``.
The name and version (distribution version, or a content hash of the module's source) land in
``experiment_runs`` (``policy``/``policy_version``, ``teacher``/``teacher_version``),
``data_generation_plans`` and ``policy_actions`` (``policy``/``policy_version``).

``dataenvgym schema <environment>`` prints the JSON Schema of the state and plan; every state's
``render()`` is the text an LLM agent is shown.
"""

from __future__ import annotations

from dataenvgym_dagster.agents.loading import (
    ENGINE_GROUP,
    POLICY_GROUP,
    AgentError,
    AgentInfo,
    LoadedPolicy,
    PlanRefusedError,
    load_engine_factory,
    load_policy,
    run_policy,
)
from dataenvgym_dagster.agents.schema import environment_schema
from dataenvgym_dagster.domain.environments import ENVIRONMENTS, get_environment
from dataenvgym_dagster.domain.environments.base import (
    Environment,
    EnvironmentState,
    Observation,
    Policy,
    PolicyContext,
    PolicySpec,
    SubskillProposer,
    allocate,
    make_plan,
)
from dataenvgym_dagster.domain.environments.open_ended import OpenEndedState
from dataenvgym_dagster.domain.environments.performance import SkillPerformance, learnability
from dataenvgym_dagster.domain.environments.skill_list import SkillListState
from dataenvgym_dagster.domain.environments.skill_tree import SkillTree, SkillTreeState, SubskillNode
from dataenvgym_dagster.domain.environments.validation import plan_problems
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry, PolicyAction, SimilarExample
from dataenvgym_dagster.domain.teachers.chat import ChatMessage, ChatReply, ChatRequest, TeacherChat
from dataenvgym_dagster.domain.teachers.protocol import DataGenerationEngine, GenerationFailure, GenerationResult
from dataenvgym_dagster.domain.types import EvaluationRecord, TrainingExample

__all__ = [
    "ENGINE_GROUP",
    "ENVIRONMENTS",
    "POLICY_GROUP",
    "AgentError",
    "AgentInfo",
    "ChatMessage",
    "ChatReply",
    "ChatRequest",
    "DataGenerationEngine",
    "DataGenerationPlan",
    "Environment",
    "EnvironmentState",
    "EvaluationRecord",
    "GenerationFailure",
    "GenerationResult",
    "LoadedPolicy",
    "Observation",
    "OpenEndedState",
    "PlanEntry",
    "PlanRefusedError",
    "Policy",
    "PolicyAction",
    "PolicyContext",
    "PolicySpec",
    "SimilarExample",
    "SkillListState",
    "SkillPerformance",
    "SkillTree",
    "SkillTreeState",
    "SubskillNode",
    "SubskillProposer",
    "TeacherChat",
    "TrainingExample",
    "allocate",
    "environment_schema",
    "get_environment",
    "learnability",
    "load_engine_factory",
    "load_policy",
    "make_plan",
    "plan_problems",
    "run_policy",
]

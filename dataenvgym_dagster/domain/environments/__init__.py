"""Teacher environments: how student feedback becomes a state, and policies that act on it."""

from __future__ import annotations

from dataenvgym_dagster.domain.environments.base import Environment, Observation, PolicyContext, PolicySpec
from dataenvgym_dagster.domain.environments.open_ended import OpenEndedEnvironment
from dataenvgym_dagster.domain.environments.skill_list import SkillListEnvironment
from dataenvgym_dagster.domain.environments.skill_tree import SkillTreeEnvironment

ENVIRONMENTS: dict[str, Environment] = {
    environment.name: environment
    for environment in (OpenEndedEnvironment(), SkillListEnvironment(), SkillTreeEnvironment())
}

# The paper's LLM agents, one per environment (``policy: llm``); they ask the teacher's chat model.
from dataenvgym_dagster.domain.environments.llm import LLM_POLICIES  # noqa: E402  (it imports the environments above)

for _environment in ENVIRONMENTS.values():
    _environment.policies = {**_environment.policies, "llm": LLM_POLICIES[_environment.name]}


def get_environment(name: str) -> Environment:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise KeyError(f"unknown environment {name!r}; environments: {', '.join(ENVIRONMENTS)}") from None


__all__ = ["ENVIRONMENTS", "Environment", "Observation", "PolicyContext", "PolicySpec", "get_environment"]

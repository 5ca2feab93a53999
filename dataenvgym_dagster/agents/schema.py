"""What an agent written in another language (or an LLM prompt) sees: JSON Schemas of states and plans."""

from __future__ import annotations

from typing import Any

from dataenvgym_dagster.domain.environments import ENVIRONMENTS, get_environment
from dataenvgym_dagster.domain.plans import DataGenerationPlan


def environment_schema(environment: str) -> dict[str, Any]:
    """The JSON Schemas of ``environment``'s state and plan, the actions a plan may record, and the rules.

    The state schema is the serialised form (``state.model_dump(mode="json")``), computed fields
    such as ``accuracy`` and ``reward`` included.
    """
    env = get_environment(environment)
    return {
        "environment": env.name,
        "state": env.state_type.model_json_schema(mode="serialization"),
        "plan": DataGenerationPlan.model_json_schema(),
        "actions": dict(env.actions),
        "rules": [
            "the plan's domain, experiment and iteration are the state's, and its environment is this one",
            "the plan asks for at least one and at most `budget` examples (PolicyContext.budget)",
            "entry ids are unique; every action is one of `actions`",
            _skill_rule(env.name),
        ],
        "built_in_policies": {name: spec.summary for name, spec in env.policies.items()},
    }


def _skill_rule(environment: str) -> str:
    return {
        "skill_list": "every entry's skill, and every action's skill, is a skill of the state",
        "skill_tree": "every entry's parent_skill, and every action's skill, is a top-level skill (tree) of the state; "
        "an entry's skill is a sub-skill name, new or existing",
        "open_ended": "every entry's skill is the skill label of an example of the state; similar_to and actions name "
        "example ids of the state",
    }[environment]


def environment_names() -> list[str]:
    return list(ENVIRONMENTS)

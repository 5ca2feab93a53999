"""Versioned prompt templates for the LLM teacher and the LLM skill discoverer.

One template per task and environment, worded for no domain in particular; the domain's own
``brief`` says what its questions and answers look like. ``PROMPT_VERSION`` is part of every cache key and ledger row:
bump it whenever a template's wording changes, so cached replies to old prompts are not reused
as if they answered the new ones.
"""

from __future__ import annotations

import json
from string import Template

from pydantic import BaseModel

from dataenvgym_dagster.domain.teachers.chat import ChatMessage
from dataenvgym_dagster.domain.registry import DOMAINS, get_domain

PROMPT_VERSION = "2026-11-30.1"

SYSTEM = Template(
    "You are a teacher writing training data for a small student model.\n"
    "$brief\n\n"
    "Reply with one JSON object that matches this JSON schema, and nothing else:\n$schema"
)

# -- data generation, one template per environment ----------------------------------------------
GENERATE = {
    "skill_list": Template(
        "Write $count new, distinct problems that practise one skill.\n"
        "Skill: `$skill`\n"
        "Number of problems: $count\n"
        "Why this skill: $rationale\n"
        "Vary the problems and their difficulty within the skill; give the correct answer to each."
    ),
    "skill_tree": Template(
        "Write $count new, distinct problems that practise one sub-skill of `$parent_skill`.\n"
        "Skill: `$skill`\n"
        "Number of problems: $count\n"
        "Why this sub-skill: $rationale\n"
        "Stay within the sub-skill; vary the problems; give the correct answer to each."
    ),
    "open_ended": Template(
        "The student answered these problems wrongly (question, correct answer, student's answer):\n"
        "$errors\n\n"
        "Write $count new, distinct problems that practise the same weakness: the same kind of problem "
        "with different details. Do not copy the problems above.\n"
        "Skill: `$skill`\n"
        "Number of problems: $count\n"
        "Give the correct answer to each."
    ),
}

PROPOSE_SUBSKILLS = Template(
    "The skill `$skill` is being taught as a tree of narrower sub-skills.\n"
    "Existing sub-skills: $existing\n"
    "Propose up to $count new sub-skills of `$skill` that the existing ones do not cover.\n"
    "Number of sub-skills: $count\n"
    "Name each in lower-case snake_case, without the parent's name, e.g. `with_fractions`."
)

# -- skill discovery --------------------------------------------------------------------------------
LABEL_QUESTIONS = Template(
    "Name the single skill each question below tests, as a short lower-case snake_case name "
    "(e.g. `solving_linear_equations`). Give every question a label, using its number as `id`.\n"
    "${known}"
    "Questions:\n$questions"
)

GROUP_SKILLS = Template(
    "Group these skills into a few broad categories (lower-case snake_case names, e.g. `algebra`). "
    "Put every skill in exactly one category.\n"
    "Skills:\n$skills"
)


GENERIC_BRIEF = "Write each question exactly as a student would see it and each answer as the exact, shortest correct answer."


def domain_brief(domain: str) -> str:
    """The registered domain's own brief, or a generic one for a name no domain is registered under."""
    return get_domain(domain).brief if domain in DOMAINS else GENERIC_BRIEF


def system_message(domain: str, reply_model: type[BaseModel]) -> ChatMessage:
    schema = json.dumps(reply_model.model_json_schema(), sort_keys=True)
    return ChatMessage(role="system", content=SYSTEM.substitute(brief=domain_brief(domain), schema=schema))


def user_message(template: Template, **values: object) -> ChatMessage:
    return ChatMessage(role="user", content=template.substitute({k: str(v) for k, v in values.items()}))

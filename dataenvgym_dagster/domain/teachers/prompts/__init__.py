"""Versioned prompt templates for the LLM teacher and the LLM skill discoverer.

One template per task and environment; the domain's brief (``domains.py``) says what its
questions and answers look like. ``PROMPT_VERSION`` is part of every cache key and ledger row:
bump it whenever a template's wording changes, so cached replies to old prompts are not reused
as if they answered the new ones.
"""

from __future__ import annotations

import json
from string import Template

from pydantic import BaseModel

from dataenvgym_dagster.domain.teachers.chat import ChatMessage
from dataenvgym_dagster.domain.teachers.prompts.domains import domain_brief

PROMPT_VERSION = "2026-11-22.1"

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
        "Vary the numbers and the difficulty within the skill; give the correct answer to each."
    ),
    "skill_tree": Template(
        "Write $count new, distinct problems that practise one sub-skill of `$parent_skill`.\n"
        "Skill: `$skill`\n"
        "Number of problems: $count\n"
        "Why this sub-skill: $rationale\n"
        "Stay within the sub-skill; vary the numbers; give the correct answer to each."
    ),
    "open_ended": Template(
        "The student answered these problems wrongly (question, correct answer, student's answer):\n"
        "$errors\n\n"
        "Write $count new, distinct problems that practise the same weakness: the same kind of problem "
        "with different numbers. Do not copy the problems above.\n"
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
    "Name each in lower-case snake_case, without the parent's name, e.g. `two_digit_carry`."
)

# -- skill discovery --------------------------------------------------------------------------------
LABEL_QUESTIONS = Template(
    "Name the single skill each question below tests, as a short lower-case snake_case name "
    "(e.g. `two_digit_addition_with_carry`). Give every question a label, using its number as `id`.\n"
    "${known}"
    "Questions:\n$questions"
)

GROUP_SKILLS = Template(
    "Group these skills into a few broad categories (lower-case snake_case names, e.g. `addition`). "
    "Put every skill in exactly one category.\n"
    "Skills:\n$skills"
)


def system_message(domain: str, reply_model: type[BaseModel]) -> ChatMessage:
    schema = json.dumps(reply_model.model_json_schema(), sort_keys=True)
    return ChatMessage(role="system", content=SYSTEM.substitute(brief=domain_brief(domain), schema=schema))


def user_message(template: Template, **values: object) -> ChatMessage:
    return ChatMessage(role="user", content=template.substitute({k: str(v) for k, v in values.items()}))

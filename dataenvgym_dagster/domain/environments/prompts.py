"""Versioned prompts of the LLM policies (the paper's baseline agents), one per environment.

The state is shown exactly as its text rendering (``state.render()``). ``PROMPT_VERSION`` is part
of every cache key, ledger row and the llm policy's version in the warehouse: bump it whenever
a template's wording changes, so a prompt change is a new agent version.
"""

from __future__ import annotations

import json
from string import Template

from pydantic import BaseModel

from dataenvgym_dagster.domain.teachers.chat import ChatMessage

PROMPT_VERSION = "2026-12-06.1"

SYSTEM = Template(
    "You are the policy of a teacher that writes training data for a small student model. Each iteration you read "
    "the state of the student's learning environment and decide how to spend a budget of new training examples.\n\n"
    "Reply with one JSON object that matches this JSON schema, and nothing else:\n$schema"
)

DECIDE = {
    "skill_list": Template(
        "$state\n\n"
        "Budget: at most $budget training examples in total.\n"
        "Allocate the budget over the skills above: for each skill you choose, how many examples to write and why. "
        "Use the skills' exact names. Favour skills the student can still learn; "
        "the change since the previous evaluation shows what the last data did."
    ),
    "skill_tree": Template(
        "$state\n\n"
        "Budget: at most $budget training examples in total.\n"
        "For each top-level skill, choose one action and how many examples its tree gets:\n"
        "- explore: add `new_subskills` new sub-skills (a teacher will name them), each starting with `new_share` of the "
        "tree's data (the existing sub-skills shrink in proportion); a tree without sub-skills must explore;\n"
        "- exploit: set `shares`, the new share of each existing sub-skill (by its exact name).\n"
        "Use the top-level skills' exact names."
    ),
    "open_ended": Template(
        "$state\n\n"
        "Budget: at most $budget training examples in total.\n"
        "Choose the errors worth practising. For each, give its id, how many new examples like it to write, and a "
        "specification of those examples (what to vary, what the student must get right)."
    ),
}

RETRY = Template(
    "The environment refused your reply: $reasons\n"
    "Reply again with one corrected JSON object."
)


def system_message(reply_model: type[BaseModel]) -> ChatMessage:
    return ChatMessage(role="system", content=SYSTEM.substitute(schema=json.dumps(reply_model.model_json_schema(), sort_keys=True)))


def decide_message(environment: str, state_text: str, budget: int) -> ChatMessage:
    return ChatMessage(role="user", content=DECIDE[environment].substitute(state=state_text, budget=budget))


def retry_messages(reply: str, reasons: list[str]) -> tuple[ChatMessage, ChatMessage]:
    """The refused reply (as the assistant's turn) and the reasons, for the next try."""
    return ChatMessage(role="assistant", content=reply), ChatMessage(role="user", content=RETRY.substitute(reasons="; ".join(reasons)))

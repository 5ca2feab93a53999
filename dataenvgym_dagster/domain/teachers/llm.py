"""The LLM teacher: a data generation engine that asks a chat model for problems and answers.

Each plan entry is split into calls of at most ``examples_per_call`` problems. The prompt
depends on the plan's environment (Skill-List: problems of a skill; Skill-Tree: problems of a
sub-skill of a top-level skill; Open-Ended: problems like the student's listed errors) and on
the domain (what questions and answers look like). A call that fails, or returns fewer problems
than asked, becomes a :class:`GenerationFailure` for what is missing; the other calls' examples
are kept. Answers are not trusted here: the quality filters verify every one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, field_validator

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.protocol import Domain, GeneratedItem, WorkedSolutions
from dataenvgym_dagster.domain.teachers import prompts
from dataenvgym_dagster.domain.teachers.chat import ChatRequest, TeacherChat
from dataenvgym_dagster.domain.teachers.protocol import GenerationFailure, GenerationResult
from dataenvgym_dagster.domain.types import TrainingExample

MAX_ERRORS_SHOWN = 8  # Open-Ended: errors quoted per prompt; more adds tokens, not information


def _as_text(value: object) -> object:
    """Models often answer ``51`` rather than ``"51"``; both mean the same answer."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class GeneratedProblem(GeneratedItem):
    """The default item: a question and its answer; numbers are read as text."""

    _text = field_validator("question", "answer", mode="before")(_as_text)


def reply_model(item: type[BaseModel]) -> type[BaseModel]:
    """The reply to a data generation prompt: ``{"problems": [item, ...]}`` for the domain's item shape."""
    if item is GeneratedItem:
        item = GeneratedProblem
    return create_model("GeneratedProblems", __config__=ConfigDict(title="GeneratedProblems"), problems=(list[item], ...))


GeneratedProblems = reply_model(GeneratedItem)


class ProposedSubskills(BaseModel):
    """The teacher's reply to a Skill-Tree sub-skill proposal prompt."""

    model_config = ConfigDict(title="ProposedSubskills")

    subskills: list[str]


def derived_seed(seed: int, *parts: object) -> int:
    """A seed for one call that depends only on ``seed`` and what the call is for."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def slug(name: str) -> str:
    """``Two-digit Addition (carry)`` → ``two_digit_addition_carry``: a safe skill name part."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


class LlmTeacher:
    """Writes training examples with a chat model; implements ``DataGenerationEngine``.

    ``target`` is the student's (``student.target``): with ``solution``, each problem is asked for in
    the domain's ``solution_item`` shape, so that it comes with the worked solution the student
    learns from (code: an explanation as well as the program).
    """

    name = "llm"

    def __init__(self, domain: Domain, chat: TeacherChat, examples_per_call: int = 20, target: str = "answer") -> None:
        if examples_per_call < 1:
            raise ValueError(f"examples_per_call must be at least 1, got {examples_per_call}")
        if target == "solution" and not isinstance(domain, WorkedSolutions):
            raise ValueError(f"student.target 'solution' needs worked solutions, which the {domain.name} domain does not have")
        self.domain = domain
        self.chat = chat
        self.examples_per_call = examples_per_call
        self.reply_model = reply_model(domain.solution_item if isinstance(domain, WorkedSolutions) and target == "solution" else domain.generated_item)

    def usage(self) -> dict[str, float | int]:
        """Calls, cache hits, tokens and cost of everything this engine asked so far."""
        return self.chat.usage()

    # -- data generation -----------------------------------------------------------------------
    def generate(self, plan: DataGenerationPlan, seed: int, avoid: frozenset[str] = frozenset()) -> GenerationResult:
        # ``avoid`` is too large to put in a prompt; the quality filters reject any overlap.
        calls: list[tuple[PlanEntry, int, int]] = []  # (entry, first index, count)
        for entry in plan.entries:
            for start in range(0, entry.count, self.examples_per_call):
                calls.append((entry, start, min(self.examples_per_call, entry.count - start)))
        requests = [self._generation_request(plan.environment, entry, count, derived_seed(seed, entry.entry_id, start))
                    for entry, start, count in calls]
        replies = self.chat.complete(requests, self.reply_model)
        examples: list[TrainingExample] = []
        failures: list[GenerationFailure] = []
        for (entry, start, count), reply in zip(calls, replies, strict=True):
            problems, unusable = [], []
            for item in reply.value.problems[:count] if reply.ok else []:
                try:
                    problems.append(self.domain.draft(item))
                except (ValueError, ValidationError) as error:  # an item the domain cannot read counts as missing
                    unusable.append(str(error).splitlines()[0])
            for offset, draft in enumerate(problems):
                examples.append(
                    TrainingExample(
                        example_id=f"{entry.entry_id}/{start + offset:05d}", skill=entry.skill,
                        plan_entry_id=entry.entry_id, **draft.model_dump(),
                    )
                )
            if len(problems) < count:
                reason = reply.error or f"the reply had {len(problems)} of {count} problems"
                if unusable:
                    reason += f" ({len(unusable)} unusable: {unusable[0]})"
                failures.append(
                    GenerationFailure(entry_id=entry.entry_id, missing=count - len(problems), reason=f"{reason} (prompt {reply.prompt_hash[:12]})")
                )
        return GenerationResult(requested=plan.total, examples=tuple(examples), failures=tuple(failures))

    def _generation_request(self, environment: str, entry: PlanEntry, count: int, seed: int) -> ChatRequest:
        if environment not in prompts.GENERATE:
            raise ValueError(
                f"the LLM teacher has no prompt for environment {environment!r}; known: {', '.join(prompts.GENERATE)}"
            )
        errors = "\n".join(
            f"- {example.question} -> {example.reference} (student: {example.prediction or 'no answer'}"
            + (f"; {example.verdict}" if example.verdict and example.prediction else "") + ")"
            for example in entry.similar_to[:MAX_ERRORS_SHOWN]
        )
        user = prompts.user_message(
            prompts.GENERATE[environment], count=count, skill=entry.skill, parent_skill=entry.parent_skill or "",
            rationale=entry.rationale, errors=errors or "(none listed)",
        )
        return ChatRequest(
            purpose=f"generate:{environment}", seed=seed, prompt_version=prompts.PROMPT_VERSION,
            messages=(prompts.system_message(self.domain.name, self.reply_model), user),
        )

    # -- Skill-Tree explore ----------------------------------------------------------------------
    def propose_subskills(self, skill: str, existing: Sequence[str], count: int, seed: int) -> list[str]:
        """Up to ``count`` new sub-skills of ``skill``, named ``<skill>/<snake_case>``; [] if the call fails."""
        if count <= 0:
            return []
        user = prompts.user_message(
            prompts.PROPOSE_SUBSKILLS, skill=skill, count=count, existing=", ".join(f"`{s}`" for s in existing) or "none"
        )
        request = ChatRequest(
            purpose="propose_subskills", seed=derived_seed(seed, skill, len(existing)), prompt_version=prompts.PROMPT_VERSION,
            messages=(prompts.system_message(self.domain.name, ProposedSubskills), user),
        )
        (reply,) = self.chat.complete([request], ProposedSubskills)
        if not reply.ok:
            return []
        proposed: list[str] = []
        for name in reply.value.subskills:
            leaf = slug(name.removeprefix(f"{skill}/"))
            full = f"{skill}/{leaf}"
            if leaf and full not in existing and full not in proposed:
                proposed.append(full)
        return proposed[:count]

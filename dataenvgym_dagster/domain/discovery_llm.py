"""LLM skill discovery: a chat model labels each validation question with a skill, then groups skills.

Two steps, as in DataEnvGym: (1) label every question with a short skill name, in batches of
``questions_per_call``; (2) group the distinct names into categories. Names are normalised to
``category/skill`` in lower-case snake_case. Every question is assigned: one whose batch failed
is labelled ``other/unlabelled``, a skill the grouping left out goes to ``other``. Given the
previous iteration's taxonomy, the labeller is shown its skills to reuse and known skills keep
their category, so the taxonomy stays stable from one iteration to the next.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dataenvgym_dagster.domain.discovery import DiscoveredSkills
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.teachers import prompts
from dataenvgym_dagster.domain.teachers.chat import ChatRequest, TeacherChat
from dataenvgym_dagster.domain.teachers.llm import derived_seed, slug
from dataenvgym_dagster.domain.types import Problem

FALLBACK_CATEGORY = "other"
UNLABELLED = "unlabelled"


class QuestionLabel(BaseModel):
    id: int = Field(description="The question's number in the list.")
    skill: str

    @field_validator("id", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return value.strip().rstrip(".") if isinstance(value, str) else value


class QuestionLabels(BaseModel):
    model_config = ConfigDict(title="QuestionLabels")

    labels: list[QuestionLabel]


class SkillCategory(BaseModel):
    category: str
    skills: list[str]


class SkillGroups(BaseModel):
    model_config = ConfigDict(title="SkillGroups")

    categories: list[SkillCategory]


class LlmSkillDiscoverer:
    """Implements ``SkillDiscoverer`` with a chat model."""

    name = "llm"

    def __init__(self, chat: TeacherChat, *, seed: int = 0, questions_per_call: int = 40) -> None:
        self.chat = chat
        self.seed = seed
        self.questions_per_call = questions_per_call

    def discover(self, domain: str, problems: Sequence[Problem], previous: DiscoveredSkills | None) -> DiscoveredSkills:
        known_category = {skill.split("/", 1)[1]: skill.split("/", 1)[0] for skill in previous.taxonomy.skills} if previous else {}
        leaves = self._label(domain, problems, sorted(known_category))
        categories = self._group(domain, sorted(set(leaves.values()) - set(known_category) - {UNLABELLED}))
        categories = {**categories, **known_category, UNLABELLED: FALLBACK_CATEGORY}
        assignments = {example_id: f"{categories.get(leaf, FALLBACK_CATEGORY)}/{leaf}" for example_id, leaf in leaves.items()}
        tree: dict[str, set[str]] = {}
        for skill in assignments.values():
            tree.setdefault(skill.split("/", 1)[0], set()).add(skill)
        taxonomy = SkillTaxonomy(domain=domain, categories={c: tuple(sorted(s)) for c, s in sorted(tree.items())})
        return DiscoveredSkills(discoverer=self.name, taxonomy=taxonomy, assignments=assignments)

    def _label(self, domain: str, problems: Sequence[Problem], known: list[str]) -> dict[str, str]:
        """example_id → skill leaf name (snake_case, no category)."""
        batches = [problems[i : i + self.questions_per_call] for i in range(0, len(problems), self.questions_per_call)]
        hint = f"Known skills (reuse one when it fits): {', '.join(known)}\n" if known else ""
        requests = [
            ChatRequest(
                purpose="discover:label", seed=derived_seed(self.seed, "label", number), prompt_version=prompts.PROMPT_VERSION,
                messages=(
                    prompts.system_message(domain, QuestionLabels),
                    prompts.user_message(
                        prompts.LABEL_QUESTIONS, known=hint,
                        questions="\n".join(f"{index}. {problem.question}" for index, problem in enumerate(batch, start=1)),
                    ),
                ),
            )
            for number, batch in enumerate(batches)
        ]
        leaves = {}
        for batch, reply in zip(batches, self.chat.complete(requests, QuestionLabels), strict=True):
            labels = {label.id: slug(label.skill.split("/")[-1]) for label in reply.value.labels} if reply.ok else {}
            for index, problem in enumerate(batch, start=1):
                leaves[problem.example_id] = labels.get(index) or UNLABELLED
        return leaves

    def _group(self, domain: str, skills: list[str]) -> dict[str, str]:
        """leaf → category for skills not in the previous taxonomy."""
        if not skills:
            return {}
        request = ChatRequest(
            purpose="discover:group", seed=derived_seed(self.seed, "group", len(skills)), prompt_version=prompts.PROMPT_VERSION,
            messages=(
                prompts.system_message(domain, SkillGroups),
                prompts.user_message(prompts.GROUP_SKILLS, skills="\n".join(f"- {skill}" for skill in skills)),
            ),
        )
        (reply,) = self.chat.complete([request], SkillGroups)
        wanted = set(skills)
        categories: dict[str, str] = {}
        for group in reply.value.categories if reply.ok else []:
            category = slug(group.category) or FALLBACK_CATEGORY
            for skill in group.skills:
                leaf = slug(skill.split("/")[-1])
                if leaf in wanted:
                    categories.setdefault(leaf, category)
        return categories

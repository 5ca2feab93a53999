"""The tool-use domain (MnMs): the student plans a chain of tool calls for a user request."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.benchmark import ProceduralSource
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.tool_use.catalogue import load_catalogue
from dataenvgym_dagster.domain.tool_use.generators import sample_plan
from dataenvgym_dagster.domain.tool_use.mnms import MnmsSource
from dataenvgym_dagster.domain.tool_use.plans import (
    Plan,
    compact,
    mnms_json,
    parse_completion,
    plan_from_steps,
    plan_problems,
    tool_names,
)
from dataenvgym_dagster.domain.tool_use.scoring import plan_metrics, verdict
from dataenvgym_dagster.domain.types import Draft, Problem, Score, StudentText

# The procedural source's gold skills, from easy (one tool named by a distinctive word) through
# confusable single tools (crop left/top, math/trivia facts) to pairs and three-step chains whose
# last tool varies.
SKILLS = (
    "ml/image_captioning",
    "ml/image_classification",
    "ml/automatic_speech_recognition",
    "ml/automatic_speech_recognition>text_summarization",
    "image/image_crop_left",
    "image/image_crop_top",
    "api/get_math_fact",
    "api/get_trivia_fact",
    "api/get_location>get_weather",
    "image+ml/object_detection>count",
    "image+ml/object_detection>select_object",
    "api+image+ml/object_detection>count",
)

_PLAN_FORMAT = (
    'A plan is a JSON list of tool calls in order, each {"name": <tool>, "args": {<argument>: <value>}}, '
    "using exactly the tool and argument names below and every argument of each tool. A value is a literal "
    "from the request (a file name, a number, a quoted text) or a reference `<node-k>.<output>` to an output of "
    "the earlier call k (counting from 0), whose type must fit the argument, "
    'e.g. [{"name": "object detection", "args": {"image": "2327921.jpg"}}, '
    '{"name": "count", "args": {"objects": "<node-0>.objects"}}].'
)


class ToolCall(BaseModel):
    """One step of a teacher-written plan."""

    model_config = ConfigDict(title="ToolCall")

    name: str = Field(description="The tool, exactly as the catalogue names it.")
    args: dict[str, str | int] = Field(description="Every argument of the tool: a literal from the request or '<node-k>.<output>'.")


class ToolUseItem(BaseModel):
    """One teacher-written problem: a user request and the plan that answers it."""

    model_config = ConfigDict(title="ToolUseItem")

    request: str = Field(description="The user's request exactly as the student sees it, with its inputs (file names, texts, numbers).")
    plan: list[ToolCall] = Field(description="The tool calls that answer the request, in order (1 to 3 calls).")


class ToolUseDomain:
    """MnMs tool use: the student reads a request and writes the plan.

    The student's target is the compact JSON rendering of the gold plan (tool names with their
    argument names); its completion may also be the full MnMs JSON, or a Python literal as MnMs's
    ``plan_str`` is written. Score value: plan accuracy; every per-example metric of
    :mod:`~dataenvgym_dagster.domain.tool_use.scoring` goes in ``Score.metrics``.
    """

    name = "tool_use"
    generated_item = ToolUseItem

    def __init__(self) -> None:
        self.catalogue = load_catalogue()
        categories: dict[str, list[str]] = {}
        for skill in SKILLS:
            categories.setdefault(skill.split("/", 1)[0], []).append(skill)
        self.taxonomy = SkillTaxonomy(domain=self.name, categories={c: tuple(s) for c, s in categories.items()})
        self.sources = {"procedural": ProceduralSource(self), "mnms": MnmsSource(self.catalogue)}
        self.brief = (
            "The domain is tool use (MnMs): a problem is a user request that a plan of 1 to 3 tool calls answers. "
            f"{_PLAN_FORMAT}\nThe tools, as name(argument: type) -> {{output: type}}, by category "
            f"(ml: models, image: image processing, api: public APIs):\n{self.catalogue.describe()}\n"
            "A skill named `<categories>/<tool>` or `<categories>/<tool>><tool>` (tool names with _ for spaces) means "
            "plans that begin with that tool or tool pair and use tools of exactly those categories, "
            "e.g. `image+ml/object_detection>count`.\n"
            "Write requests in plain English that state their inputs; use as few tools as the request needs."
        )

    # -- problems -------------------------------------------------------------------------
    def sample(self, skill: str, rng: random.Random) -> Draft:
        """A templated request of ``skill`` and its gold plan (see :func:`~.generators.sample_plan`)."""
        request, plan = sample_plan(skill, rng, self.catalogue)
        return self._draft(request, plan)

    def draft(self, item: ToolUseItem) -> Draft:
        plan = plan_from_steps([call.model_dump() for call in item.plan])
        if not plan or not item.request.strip():
            raise ValueError("a tool-use item needs a request and at least one tool call")
        return self._draft(item.request.strip(), plan)

    @staticmethod
    def _draft(request: str, plan: Plan) -> Draft:
        return Draft(question=request, answer=tool_names(plan), payload={"plan": mnms_json(plan)})

    @staticmethod
    def gold_plan(problem: Problem) -> Plan:
        """The problem's reference plan (payload ``plan``); ``ValueError`` if it has none."""
        return plan_from_steps(problem.payload.get("plan"))

    # -- the student's text format --------------------------------------------------------
    def student_text(self, problem: Problem) -> StudentText:
        """The request, then ``Plan:``; the target is the compact JSON plan."""
        return StudentText(prompt=f"{problem.question}\nPlan:", target=compact(self.gold_plan(problem)))

    # -- checking -------------------------------------------------------------------------
    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """Plan accuracy as the value; all plan metrics in ``metrics``; unparsable plans score 0."""
        scores = []
        for problem, completion in zip(problems, completions, strict=True):
            gold, predicted = self.gold_plan(problem), parse_completion(completion)
            metrics = plan_metrics(gold, predicted, self.catalogue)
            scores.append(
                Score(
                    value=metrics["plan_accuracy"],
                    extracted=tool_names(predicted) if predicted else "",
                    verdict=verdict(gold, predicted, metrics),
                    metrics=metrics,
                )
            )
        return scores

    def verify(self, problems: Sequence[Problem]) -> list[bool]:
        """Whether each problem's plan is valid against the catalogue and matches its answer."""
        return [self._verified(problem) for problem in problems]

    def _verified(self, problem: Problem) -> bool:
        try:
            plan = self.gold_plan(problem)
        except ValueError:
            return False
        return not plan_problems(plan, self.catalogue) and tool_names(plan) == problem.answer

    @staticmethod
    def canonical(question: str) -> str:
        """Lower case, punctuation dropped (inside file names too) and spaces collapsed: ``Count the
        dogs in 1.jpg!`` and ``count the dogs in 1 jpg`` are the same request."""
        return " ".join(re.sub(r"[^\w\s]", " ", question.lower()).split())


TOOL_USE = ToolUseDomain()

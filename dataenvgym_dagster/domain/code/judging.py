"""The trusted judge: decides a program's verdict from the data its sandbox sends back.

No code of the program under test runs here. Stdin programs send their stdout; functional
programs (LiveCodeBench functional, teacher and procedural problems) send each return value as
plain data (:mod:`~dataenvgym_dagster.domain.code.plain_data`); HumanEval's ``check(candidate)``
runs here with ``candidate`` standing for the sandboxed function, each call a round trip to the
sandbox. A program that ends its process before its tests ran fails them.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import traceback
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.code.execution import ProgramExecutor, ProgramSession, Reply, ReplyStatus, TestCase, Verdict

TRUNCATE = 300  # characters of each field of a failure, as the teacher sees it
_VERDICT_OF: dict[ReplyStatus, Verdict] = {
    "error": "runtime_error", "compile_error": "compile_error", "not_plain_data": "wrong_answer",
    "exited": "exited_before_tests", "timeout": "timeout", "memory_exceeded": "memory_exceeded", "killed": "killed",
    "output_limit": "output_limit",
}
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH", re.IGNORECASE)


class Job(BaseModel):
    """A program and the tests to judge it by.

    ``stdin``: per test, the program runs as ``__main__`` with the test's input; its stdout is
    compared with the expected output. ``functional``: the program is loaded once, then per test
    ``entry_point`` (a function, or a method of ``class Solution``) is called with the JSON values
    on the input's lines and its result compared with the expected JSON. ``script`` (HumanEval):
    ``helpers`` (the prompt, trusted) and ``test_code`` run on the judge's side with
    ``entry_point`` bound to the sandboxed function; an assertion failing is a wrong answer.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["script", "stdin", "functional"]
    program: str
    tests: tuple[TestCase, ...] = ()
    entry_point: str | None = None
    test_code: str | None = None
    helpers: str = ""
    float_tolerance: float = 1e-6


class Failure(BaseModel):
    """The first failing test, truncated: what the teacher is shown."""

    model_config = ConfigDict(frozen=True)

    test: int
    input: str = ""
    expected: str = ""
    actual: str = ""
    error: str = ""


class Outcome(BaseModel):
    """How a program did: the verdict, tests passed of total, and the first failure."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    passed: int
    total: int
    failure: Failure | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict == "passed"

    def describe(self) -> str:
        """One line for a score's verdict: ``passed`` or the verdict and the first failing test."""
        if self.failure is None:
            return self.verdict
        f = self.failure
        parts = [f"{self.verdict} on test {f.test + 1} of {self.total}"]
        parts += [f"{name}: {value!r}" for name, value in (("input", f.input), ("expected", f.expected), ("actual", f.actual), ("error", f.error)) if value]
        return "; ".join(parts)


# -- comparisons -------------------------------------------------------------------------------
def _close(actual: str, expected: str, tolerance: float) -> bool:
    if actual == expected:
        return True
    try:
        a, e = float(actual), float(expected)
    except ValueError:
        return False
    if math.isnan(a) or math.isnan(e):
        return False
    return abs(a - e) <= tolerance * max(1.0, abs(e))


def same_output(actual: str, expected: str, tolerance: float = 1e-6) -> bool:
    """Whether stdout ``actual`` matches ``expected``: the same lines (trailing blanks ignored),
    tokens equal or numbers within ``tolerance`` (absolute below 1, relative above)."""
    a_lines = [line.rstrip() for line in actual.strip().splitlines()]
    e_lines = [line.rstrip() for line in expected.strip().splitlines()]
    if len(a_lines) != len(e_lines):
        return False
    for a_line, e_line in zip(a_lines, e_lines):
        if a_line == e_line:
            continue
        a_tokens, e_tokens = a_line.split(), e_line.split()
        if len(a_tokens) != len(e_tokens) or not all(_close(a, e, tolerance) for a, e in zip(a_tokens, e_tokens)):
            return False
    return True


def same_value(actual: object, expected: object, tolerance: float = 1e-6) -> bool:
    """Whether JSON values are equal, floats within ``tolerance`` (a tuple counts as the JSON list it becomes)."""
    if isinstance(actual, tuple):
        actual = list(actual)
    if isinstance(actual, float) or isinstance(expected, float):
        if isinstance(actual, bool) or isinstance(expected, bool):
            return actual == expected
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
            return _close(repr(float(actual)), repr(float(expected)), tolerance)
        return False
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(same_value(a, e, tolerance) for a, e in zip(actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same_value(actual[k], expected[k], tolerance) for k in actual)
    return type(actual) is type(expected) and actual == expected


def parse_arguments(text: str) -> list:
    """LiveCodeBench's functional input: one JSON value per line, one line per argument."""
    return [json.loads(line) for line in text.split("\n") if line.strip()]


# -- text the teacher sees -----------------------------------------------------------------------
def truncate(text: object, limit: int = TRUNCATE) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out; host secrets redacted."""
    text = redact(text if isinstance(text, str) else repr(text))
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def redact(text: str) -> str:
    """``text`` with the value of every secret-looking host environment variable replaced.

    Programs run with an empty environment, so this should never match; it is the last guard
    before a verdict reaches the warehouse and the teacher.
    """
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, f"[{name} redacted]")
    return text


def _failure(verdict: Verdict, index: int, passed: int, total: int, input_: str = "", expected: str = "", actual: str = "", error: str = "") -> Outcome:
    return Outcome(
        verdict=verdict, passed=passed, total=total,
        failure=Failure(test=index, input=truncate(input_), expected=truncate(expected), actual=truncate(actual), error=truncate(error)),
    )


def _stopped(reply: Reply, index: int, total: int, input_: str = "", expected: str = "", during: str = "") -> Outcome:
    """The outcome of a reply that is not data to compare."""
    error = reply.error
    if reply.status == "exited":
        error = f"the program ended its process {during or f'before test {index + 1} ran'}" + (f" ({error})" if error else "")
    return _failure(_VERDICT_OF[reply.status], index, index, total, input_, expected, reply.stdout, error)


# -- judging -----------------------------------------------------------------------------------
def judge(job: Job, session: ProgramSession) -> Outcome:
    """The verdict on ``job.program``, from the replies of its sandbox ``session``."""
    total = len(job.tests) or 1
    loaded = session.load(job.program, "__main__" if job.kind == "stdin" else "solution")
    if not loaded.ok:
        return _stopped(loaded, 0, total, during="while it was being loaded, before its tests ran")
    if job.kind == "stdin":
        return _judge_stdin(job, session)
    if job.kind == "functional":
        return _judge_functional(job, session)
    return _judge_script(job, session)


def _judge_stdin(job: Job, session: ProgramSession) -> Outcome:
    total = len(job.tests)
    for index, test in enumerate(job.tests):
        reply = session.run_main(test.input)
        if not reply.ok:
            return _stopped(reply, index, total, test.input, test.output)
        if reply.exit_status != 0:
            return _failure(
                "runtime_error", index, index, total, test.input, test.output, reply.stdout,
                f"exit status {reply.exit_status}" + (f": {reply.error}" if reply.error else ""),
            )
        if not same_output(reply.stdout, test.output, job.float_tolerance):
            return _failure("wrong_answer", index, index, total, test.input, test.output, reply.stdout)
    return Outcome(verdict="passed", passed=total, total=total)


def _judge_functional(job: Job, session: ProgramSession) -> Outcome:
    total, name = len(job.tests), job.entry_point or ""
    for index, test in enumerate(job.tests):
        try:
            arguments, expected = parse_arguments(test.input), json.loads(test.output)
        except json.JSONDecodeError as error:
            raise ValueError(f"test {index} of {name!r} is not JSON ({error}): {test.input!r} -> {test.output!r}") from None
        reply = session.call(name, arguments)
        if not reply.ok:
            return _stopped(reply, index, total, test.input, test.output, during=f"during test {index + 1}")
        if not same_value(reply.value, expected, job.float_tolerance):
            return _failure("wrong_answer", index, index, total, test.input, test.output, _show(reply.value))
    return Outcome(verdict="passed", passed=total, total=total)


class ProgramStopped(BaseException):
    """A call to the sandboxed function did not return a value: a BaseException, so that the test
    code's ``except Exception`` cannot take it for a failure it expected."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class Candidate:
    """Stands for the sandboxed function in HumanEval's ``check(candidate)``: each call sends the
    arguments as plain data and returns the plain-data value the sandbox sends back."""

    def __init__(self, session: ProgramSession, name: str) -> None:
        self.session, self.__name__, self.calls = session, name, 0

    def __call__(self, *arguments: object) -> object:
        self.calls += 1
        reply = self.session.call(self.__name__, arguments)
        if not reply.ok:
            raise ProgramStopped(reply)
        return reply.value


def _judge_script(job: Job, session: ProgramSession) -> Outcome:
    name = job.entry_point or ""
    candidate = Candidate(session, name)
    scope: dict[str, object] = {"__name__": "__judge__"}
    exec(compile(job.helpers, "<prompt>", "exec"), scope)  # noqa: S102 - the benchmark's own prompt, trusted
    scope[name] = candidate
    try:
        exec(compile(job.test_code or "", "<test>", "exec"), scope)  # noqa: S102 - the benchmark's tests, trusted
    except ProgramStopped as stopped:
        return _stopped(stopped.reply, 0, 1, during=f"during call {candidate.calls} of its tests")
    except Exception as error:  # noqa: BLE001 - an assertion, or a returned value the tests could not use
        frames = [f for f in traceback.extract_tb(error.__traceback__, limit=None) if f.filename == "<test>"]
        lines = (job.test_code or "").splitlines()
        line = lines[frames[-1].lineno - 1].strip() if frames and frames[-1].lineno and frames[-1].lineno <= len(lines) else ""
        described = "".join(traceback.format_exception_only(type(error), error)).strip()
        return _failure("wrong_answer", 0, 0, 1, line, "the assertion to hold" if isinstance(error, AssertionError) else "", "", described)
    if candidate.calls == 0:
        # Tests that never call the program (a `check` defined but not called) prove nothing about it.
        return _failure("wrong_answer", 0, 0, 1, error=f"the tests never called {name}, so nothing was checked; "
                        f"the test code must call it (HumanEval's ends with check({name}))")
    return Outcome(verdict="passed", passed=1, total=1)


def _show(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def judge_all(jobs: Sequence[Job], executor: ProgramExecutor) -> list[Outcome]:
    """Every job judged, each in a sandbox of its own from ``executor``; outcomes in order, each
    with the seconds its judging took (sandbox start included)."""

    def timed(index: int, session: ProgramSession) -> Outcome:
        started = time.perf_counter()
        outcome = judge(jobs[index], session)
        return outcome.model_copy(update={"seconds": time.perf_counter() - started})

    return executor.judge_many(len(jobs), timed)

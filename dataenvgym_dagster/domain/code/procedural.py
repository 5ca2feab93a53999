"""Procedural function-writing problems: one generator per leaf skill, in three tiers of difficulty.

A problem is a HumanEval-style prompt (a ``def`` line and a docstring: one sentence and one
worked example) whose solution is a one-line body, with five functional tests (JSON arguments
and the JSON result) computed by the reference itself. Constants are single digits, so a tiny
student can learn to copy them. Tiers: ``easy`` skills put one constant into a fixed
expression, ``medium`` ones two or three constants or a comprehension, ``hard`` ones need a
conditional comprehension, a generator in ``sum`` or a polynomial. The example's input makes
each skill's problems number in the thousands after near-duplicate keys (function names do not
count), so the quality filters do not exhaust a skill within an iteration's budget.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FUNCTION_NAMES = (
    "solve", "compute", "transform", "helper", "answer", "calc", "apply", "convert", "process", "make", "step", "mapped",
)
NUMBER_ARGS = ("x", "n", "a", "value", "num")
STRING_ARGS = ("s", "text", "word", "name", "t")
LIST_ARGS = ("xs", "nums", "items", "values", "arr")
TESTS_PER_PROBLEM = 5


@dataclass(frozen=True)
class Spec:
    """One problem before rendering: the docstring, the one-line body, the argument and the reference."""

    argument: str
    doc: str
    body: str
    reference: Callable[[Any], Any]
    inputs: Callable[[random.Random], Any]


def _numbers(rng: random.Random) -> int:
    return rng.randint(-50, 50)


def _small_numbers(rng: random.Random) -> int:
    return rng.randint(0, 12)


def _strings(rng: random.Random) -> str:
    return "".join(rng.choice("abcde") for _ in range(rng.randint(0, 8)))


def _lists(rng: random.Random) -> list[int]:
    return [rng.randint(-20, 20) for _ in range(rng.randint(0, 6))]


def _letters(rng: random.Random, low: int, high: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


# -- easy ---------------------------------------------------------------------------------------
def add_constant(rng: random.Random) -> Spec:
    a, k = rng.choice(NUMBER_ARGS), rng.randint(1, 9)
    return Spec(a, f"Return {a} plus {k}.", f"return {a} + {k}", lambda v: v + k, _numbers)


def string_append(rng: random.Random) -> Spec:
    s, suffix = rng.choice(STRING_ARGS), _letters(rng, 1, 3)
    return Spec(s, f"Return {s} followed by '{suffix}'.", f"return {s} + '{suffix}'", lambda v: v + suffix, _strings)


def list_append(rng: random.Random) -> Spec:
    xs, k = rng.choice(LIST_ARGS), rng.randint(0, 9)
    return Spec(xs, f"Return {xs} with {k} appended.", f"return {xs} + [{k}]", lambda v: v + [k], _lists)


# -- medium -------------------------------------------------------------------------------------
def linear(rng: random.Random) -> Spec:
    a, k, b = rng.choice(NUMBER_ARGS), rng.randint(2, 9), rng.randint(1, 9)
    return Spec(a, f"Return {k} times {a} plus {b}.", f"return {k} * {a} + {b}", lambda v: k * v + b, _numbers)


def string_wrap(rng: random.Random) -> Spec:
    s = rng.choice(STRING_ARGS)
    left, right = rng.choice("<[({#*-"), rng.choice(">])}#*-")
    return Spec(
        s, f"Return {s} between '{left}' and '{right}'.", f"return '{left}' + {s} + '{right}'",
        lambda v: left + v + right, _strings,
    )


_OPERATORS = {"plus": ("+", lambda v, k: v + k), "minus": ("-", lambda v, k: v - k), "times": ("*", lambda v, k: v * k)}


def list_map(rng: random.Random) -> Spec:
    xs, word, k = rng.choice(LIST_ARGS), rng.choice(list(_OPERATORS)), rng.randint(1, 9)
    symbol, apply = _OPERATORS[word]
    return Spec(
        xs, f"Return each element of {xs} {word} {k}.", f"return [v {symbol} {k} for v in {xs}]",
        lambda v: [apply(x, k) for x in v], _lists,
    )


def conditional(rng: random.Random) -> Spec:
    a, limit, yes, no = rng.choice(NUMBER_ARGS), rng.randint(-9, 9), rng.randint(0, 9), rng.randint(0, 9)
    return Spec(
        a, f"Return {yes} if {a} is greater than {limit}, otherwise {no}.", f"return {yes} if {a} > {limit} else {no}",
        lambda v: yes if v > limit else no, _numbers,
    )


# -- hard ---------------------------------------------------------------------------------------
def quadratic(rng: random.Random) -> Spec:
    a, p, q, r = rng.choice(NUMBER_ARGS), rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 9)
    return Spec(
        a, f"Return {p} times {a} squared plus {q} times {a} plus {r}.", f"return {p} * {a} * {a} + {q} * {a} + {r}",
        lambda v: p * v * v + q * v + r, _numbers,
    )


def string_replace(rng: random.Random) -> Spec:
    s, old, new = rng.choice(STRING_ARGS), _letters(rng, 1, 2, "abcde"), _letters(rng, 1, 3)
    return Spec(
        s, f"Return {s} with every '{old}' replaced by '{new}'.", f"return {s}.replace('{old}', '{new}')",
        lambda v: v.replace(old, new), _strings,
    )


def filter_map(rng: random.Random) -> Spec:
    xs, limit, word, k = rng.choice(LIST_ARGS), rng.randint(-9, 9), rng.choice(list(_OPERATORS)), rng.randint(1, 9)
    symbol, apply = _OPERATORS[word]
    return Spec(
        xs, f"Return each element of {xs} greater than {limit}, {word} {k}.",
        f"return [v {symbol} {k} for v in {xs} if v > {limit}]", lambda v: [apply(x, k) for x in v if x > limit], _lists,
    )


def loop_sum(rng: random.Random) -> Spec:
    n, k, b = rng.choice(("n", "count", "size", "m", "limit")), rng.randint(2, 9), rng.randint(1, 9)
    return Spec(
        n, f"Return the sum of i times {k} plus {b} for i below {n}.", f"return sum(i * {k} + {b} for i in range({n}))",
        lambda v: sum(i * k + b for i in range(v)), _small_numbers,
    )


GENERATORS: dict[str, Callable[[random.Random], Spec]] = {
    "arithmetic/add_constant": add_constant,
    "arithmetic/linear": linear,
    "arithmetic/quadratic": quadratic,
    "strings/append": string_append,
    "strings/wrap": string_wrap,
    "strings/replace": string_replace,
    "lists/append": list_append,
    "lists/map": list_map,
    "lists/filter_map": filter_map,
    "control_flow/conditional": conditional,
    "control_flow/loop_sum": loop_sum,
}
TIERS: dict[str, tuple[str, ...]] = {
    "easy": ("arithmetic/add_constant", "strings/append", "lists/append"),
    "medium": ("arithmetic/linear", "strings/wrap", "lists/map", "control_flow/conditional"),
    "hard": ("arithmetic/quadratic", "strings/replace", "lists/filter_map", "control_flow/loop_sum"),
}
assert sorted(GENERATORS) == sorted(s for tier in TIERS.values() for s in tier)


def render(spec: Spec, rng: random.Random) -> dict[str, Any]:
    """The problem's prompt, reference body and payload (functional tests in LiveCodeBench's format)."""
    name = rng.choice(FUNCTION_NAMES)
    example = spec.inputs(rng)
    prompt = f'def {name}({spec.argument}):\n    """{spec.doc}\n    >>> {name}({example!r})\n    {spec.reference(example)!r}\n    """\n'
    tests = []
    for _ in range(TESTS_PER_PROBLEM):
        argument = spec.inputs(rng)
        tests.append({"input": json.dumps(argument), "output": json.dumps(spec.reference(argument))})
    return {
        "question": prompt,
        "answer": f"    {spec.body}",
        "payload": {"kind": "functional", "prompt": prompt, "entry_point": name, "tests": tests, "source": "procedural"},
    }

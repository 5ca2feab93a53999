"""MATH-style procedural problems: seven types × five levels, generated and solved with sympy.

Each skill is a :class:`Template`: it draws parameters, writes the LaTeX question, solves it
with sympy and writes a one-step worked solution ending in ``\\boxed{answer}``. The parameters
travel in the problem's payload, so :func:`resolve` can re-solve any procedural problem from
scratch (the ``wrong_answer`` filter).

Levels order difficulty *for a tiny student*, roughly as MATH's levels do for people: level 1
problems depend on a digit or two of the question (a remainder by 10, the parity of an
exponent), level 5 ones need several exact operations (integer roots, prime factors, surds).
Every skill's parameter space holds thousands of distinct questions or more, so neither the
duplicate filter nor the benchmark-overlap filter exhausts it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy
from sympy import Rational, factorint, gcd, pi, sqrt

Params = dict[str, Any]

TYPES = {
    "prealgebra": "Prealgebra",
    "algebra": "Algebra",
    "number_theory": "Number Theory",
    "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra",
    "precalculus": "Precalculus",
}
"""Skill category (folder name in the MATH release) → the ``type`` field of MATH files."""

LEVELS = (1, 2, 3, 4, 5)


def latex(value: Any) -> str:
    """A sympy value as compact LaTeX (``\\frac{49\\pi}{4}``, ``5\\sqrt{2}``, ``-i``)."""
    return sympy.latex(value).replace(" ", "")


def nonzero(rng: random.Random, low: int, high: int) -> int:
    while True:
        value = rng.randint(low, high)
        if value:
            return value


def signed(value: int, first: bool = False) -> str:
    """``+ 3`` / ``- 3`` between terms (``3`` / ``-3`` as the first term)."""
    if first:
        return str(value)
    return f"+ {value}" if value >= 0 else f"- {-value}"


@dataclass(frozen=True)
class Template:
    """One skill's problems: ``draw`` parameters, ``render`` the question, ``solve`` with sympy, ``explain`` the step."""

    draw: Callable[[random.Random], Params]
    render: Callable[[Params], str]
    solve: Callable[[Params], Any]
    explain: Callable[[Params], str]

    def solution(self, params: Params) -> str:
        return f"{self.explain(params)} The answer is $\\boxed{{{latex(self.solve(params))}}}$."


# -- prealgebra --------------------------------------------------------------------------------
def _larger(rng):
    a = rng.randint(100, 9999)
    b = rng.randint(100, 9999)
    return {"a": a, "b": b if b != a else b + 1}


def _percent(rng):
    return {"p": rng.randint(1, 99), "n": 100 * rng.randint(1, 100)}


def _fraction(rng):
    d = rng.randint(2, 60)
    return {"a": rng.randint(1, 20) * d, "b": rng.randint(2, 20) * d}


PREALGEBRA = {
    1: Template(
        _larger,
        lambda p: f"Which number is larger, ${p['a']}$ or ${p['b']}$?",
        lambda p: max(p["a"], p["b"]),
        lambda p: f"Comparing digit by digit, ${max(p['a'], p['b'])} > {min(p['a'], p['b'])}$.",
    ),
    2: Template(
        lambda rng: {"a": rng.randint(10, 999), "b": rng.randint(10, 99)},
        lambda p: f"Compute ${p['a']} + {p['b']}$.",
        lambda p: p["a"] + p["b"],
        lambda p: f"Adding the tens and then the units gives ${p['a']} + {p['b']} = {p['a'] + p['b']}$.",
    ),
    3: Template(
        lambda rng: {"a": rng.randint(10, 999), "b": rng.randint(10, 99)},
        lambda p: f"Compute ${p['a']} \\times {p['b']}$.",
        lambda p: p["a"] * p["b"],
        lambda p: f"${p['a']} \\times {p['b']} = {p['a']} \\times {p['b'] // 10 * 10} + {p['a']} \\times {p['b'] % 10}$.",
    ),
    4: Template(
        _percent,
        lambda p: f"What is ${p['p']}\\%$ of ${p['n']}$?",
        lambda p: Rational(p["p"] * p["n"], 100),
        lambda p: f"${p['p']}\\%$ of ${p['n']}$ is $\\frac{{{p['p']}}}{{100}} \\cdot {p['n']}$.",
    ),
    5: Template(
        _fraction,
        lambda p: f"Simplify $\\frac{{{p['a']}}}{{{p['b']}}}$.",
        lambda p: Rational(p["a"], p["b"]),
        lambda p: f"Dividing numerator and denominator by ${gcd(p['a'], p['b'])}$ simplifies the fraction.",
    ),
}


# -- algebra -----------------------------------------------------------------------------------
def _linear(rng):
    a, x = nonzero(rng, -12, 12), rng.randint(-30, 30)
    b = rng.randint(-50, 50)
    return {"a": a, "b": b, "c": a * x + b}


def _divisible(rng):
    a = rng.choice((-1, 1)) * rng.randint(2, 40)
    return {"a": a, "b": a * rng.randint(-99, 99)}


def _roots(rng):
    r, s = rng.randint(-99, 99), rng.randint(-99, 99)
    return {"b": -(r + s), "c": r * s}


def _term(coefficient: int, power: str, first: bool = False) -> str:
    if coefficient == 0:
        return ""
    if power and abs(coefficient) == 1:
        body = power
        return ("-" if coefficient < 0 else "") + body if first else ("- " if coefficient < 0 else "+ ") + body
    return f"{signed(coefficient, first)}{power}"


def polynomial(*terms: tuple[int, str]) -> str:
    """``(coefficient, power)`` terms as LaTeX, zero terms left out: ``((2, "x^2"), (-1, "x"), (3, ""))`` → ``2x^2 - x + 3``."""
    kept = [(coefficient, power) for coefficient, power in terms if coefficient]
    if not kept:
        return "0"
    return " ".join(_term(coefficient, power, first=index == 0) for index, (coefficient, power) in enumerate(kept))


def quadratic(b: int, c: int) -> str:
    """``x^2 + bx + c`` with zero terms left out."""
    return polynomial((1, "x^2"), (b, "x"), (c, ""))


ALGEBRA = {
    1: Template(
        lambda rng: {"a": rng.randint(1, 999), "b": rng.randint(1, 999)},
        lambda p: f"Solve for $x$: $x + {p['a']} = {p['b']}$.",
        lambda p: sympy.solve(sympy.Symbol("x") + p["a"] - p["b"])[0],
        lambda p: f"Subtracting ${p['a']}$ from both sides gives $x = {p['b']} - {p['a']}$.",
    ),
    2: Template(
        _divisible,
        lambda p: f"Solve for $x$: ${p['a']}x = {p['b']}$.",
        lambda p: sympy.solve(p["a"] * sympy.Symbol("x") - p["b"])[0],
        lambda p: f"Dividing both sides by ${p['a']}$ gives $x = \\frac{{{p['b']}}}{{{p['a']}}}$.",
    ),
    3: Template(
        _linear,
        lambda p: f"Solve for $x$: ${p['a']}x {signed(p['b'])} = {p['c']}$.",
        lambda p: sympy.solve(p["a"] * sympy.Symbol("x") + p["b"] - p["c"])[0],
        lambda p: f"Moving ${p['b']}$ across gives ${p['a']}x = {p['c'] - p['b']}$.",
    ),
    4: Template(
        lambda rng: {"a": nonzero(rng, -9, 9), "b": rng.randint(-9, 9), "c": rng.randint(-20, 20), "k": rng.randint(-9, 9)},
        lambda p: f"If $f(x) = {polynomial((p['a'], 'x^2'), (p['b'], 'x'), (p['c'], ''))}$, what is $f({p['k']})$?",
        lambda p: p["a"] * p["k"] ** 2 + p["b"] * p["k"] + p["c"],
        lambda p: f"Substituting $x = {p['k']}$ gives ${p['a']}({p['k']})^2 + {p['b']}({p['k']}) + {p['c']}$.",
    ),
    5: Template(
        _roots,
        lambda p: f"What is the larger solution of ${quadratic(p['b'], p['c'])} = 0$?",
        lambda p: max(sympy.solve(sympy.Symbol("x") ** 2 + p["b"] * sympy.Symbol("x") + p["c"])),
        lambda p: f"The quadratic factors as $(x - r)(x - s)$ with $r + s = {-p['b']}$ and $rs = {p['c']}$.",
    ),
}


# -- number theory -----------------------------------------------------------------------------
def _two_composites(rng):
    d = rng.randint(2, 60)
    return {"a": d * rng.randint(2, 60), "b": d * rng.randint(2, 60)}


NUMBER_THEORY = {
    1: Template(
        lambda rng: {"n": rng.randint(100, 999_999)},
        lambda p: f"What is the remainder when ${p['n']}$ is divided by $10$?",
        lambda p: p["n"] % 10,
        lambda p: "The remainder on division by $10$ is the units digit.",
    ),
    2: Template(
        lambda rng: {"n": rng.randint(100, 99_999), "m": rng.choice((2, 5))},
        lambda p: f"What is the remainder when ${p['n']}$ is divided by ${p['m']}$?",
        lambda p: p["n"] % p["m"],
        lambda p: f"Since $10$ is a multiple of ${p['m']}$, only the units digit matters.",
    ),
    3: Template(
        lambda rng: {"n": rng.randint(100, 9999), "m": rng.randint(3, 13)},
        lambda p: f"What is the remainder when ${p['n']}$ is divided by ${p['m']}$?",
        lambda p: p["n"] % p["m"],
        lambda p: f"${p['n']} = {p['m']} \\cdot {p['n'] // p['m']} + {p['n'] % p['m']}$.",
    ),
    4: Template(
        _two_composites,
        lambda p: f"What is the greatest common divisor of ${p['a']}$ and ${p['b']}$?",
        lambda p: gcd(p["a"], p["b"]),
        lambda p: "The Euclidean algorithm gives the greatest common divisor.",
    ),
    5: Template(
        lambda rng: {"n": rng.randint(30, 20_000)},
        lambda p: f"What is the sum of the distinct prime factors of ${p['n']}$?",
        lambda p: sum(factorint(p["n"])),
        lambda p: f"The distinct prime factors of ${p['n']}$ are ${', '.join(map(str, factorint(p['n'])))}$.",
    ),
}


# -- counting and probability ------------------------------------------------------------------
def _interval(rng):
    a = rng.randint(1, 500)
    return {"a": a, "b": a + rng.randint(1, 500)}


def _marbles(rng):
    return {"r": rng.randint(1, 200), "b": rng.randint(1, 200)}


def _dice(rng):
    m, n = rng.randint(4, 40), rng.randint(4, 40)
    return {"m": m, "n": n, "s": rng.randint(2, m + n)}


COUNTING_AND_PROBABILITY = {
    1: Template(
        _interval,
        lambda p: f"How many integers are there from ${p['a']}$ to ${p['b']}$, inclusive?",
        lambda p: p["b"] - p["a"] + 1,
        lambda p: f"There are ${p['b']} - {p['a']} + 1$ of them.",
    ),
    2: Template(
        lambda rng: {"k": rng.randint(2, 30), "n": rng.randint(10, 2000)},
        lambda p: f"How many positive multiples of ${p['k']}$ are less than or equal to ${p['n']}$?",
        lambda p: p["n"] // p["k"],
        lambda p: f"They are ${p['k']}, {2 * p['k']}, \\ldots$, so there are $\\lfloor {p['n']}/{p['k']} \\rfloor$ of them.",
    ),
    3: Template(
        lambda rng: {"a": rng.randint(2, 40), "b": rng.randint(2, 40), "c": rng.randint(2, 40)},
        lambda p: f"A store sells ${p['a']}$ shirts, ${p['b']}$ pairs of pants and ${p['c']}$ hats. "
        "In how many ways can one choose one shirt, one pair of pants and one hat?",
        lambda p: p["a"] * p["b"] * p["c"],
        lambda p: f"By the multiplication principle there are ${p['a']} \\cdot {p['b']} \\cdot {p['c']}$ ways.",
    ),
    4: Template(
        _marbles,
        lambda p: f"A bag holds ${p['r']}$ red marbles and ${p['b']}$ blue marbles. One marble is drawn at random. "
        "What is the probability that it is red? Express your answer as a common fraction.",
        lambda p: Rational(p["r"], p["r"] + p["b"]),
        lambda p: f"${p['r']}$ of the ${p['r'] + p['b']}$ marbles are red.",
    ),
    5: Template(
        _dice,
        lambda p: f"A fair ${p['m']}$-sided die and a fair ${p['n']}$-sided die, numbered from $1$, are rolled. "
        f"What is the probability that the sum is ${p['s']}$? Express your answer as a common fraction.",
        lambda p: Rational(sum(1 for i in range(1, p["m"] + 1) if 1 <= p["s"] - i <= p["n"]), p["m"] * p["n"]),
        lambda p: f"Count the pairs $(i, {p['s']} - i)$ among the ${p['m'] * p['n']}$ equally likely outcomes.",
    ),
}


# -- geometry ----------------------------------------------------------------------------------
def _angles(rng):
    while True:  # uniform over the pairs that leave a positive third angle
        a, b = rng.randint(1, 178), rng.randint(1, 178)
        if a + b < 180:
            return {"a": a, "b": b}


GEOMETRY = {
    1: Template(
        lambda rng: {"s": rng.randint(2, 99_999)},
        lambda p: f"A square has side length ${p['s']}$. What is its perimeter?",
        lambda p: 4 * p["s"],
        lambda p: f"The perimeter is $4 \\cdot {p['s']}$.",
    ),
    2: Template(
        _angles,
        lambda p: f"Two angles of a triangle measure ${p['a']}^\\circ$ and ${p['b']}^\\circ$. "
        "What is the measure of the third angle, in degrees?",
        lambda p: 180 - p["a"] - p["b"],
        lambda p: f"The angles of a triangle add up to $180^\\circ$, so the third is $180 - {p['a']} - {p['b']}$.",
    ),
    3: Template(
        lambda rng: {"a": rng.randint(2, 999), "b": rng.randint(2, 99)},
        lambda p: f"A rectangle is ${p['a']}$ units long and ${p['b']}$ units wide. What is its area, in square units?",
        lambda p: p["a"] * p["b"],
        lambda p: f"The area is ${p['a']} \\cdot {p['b']}$.",
    ),
    4: Template(
        lambda rng: {"a": rng.randint(1, 200), "b": rng.randint(1, 200)},
        lambda p: f"A right triangle has legs of length ${p['a']}$ and ${p['b']}$. "
        "What is the length of its hypotenuse? Express your answer in simplest radical form.",
        lambda p: sqrt(p["a"] ** 2 + p["b"] ** 2),
        lambda p: f"By the Pythagorean theorem the hypotenuse is $\\sqrt{{{p['a']}^2 + {p['b']}^2}}$.",
    ),
    5: Template(
        lambda rng: {"d": rng.randint(1, 20_000)},
        lambda p: f"What is the area of a circle with diameter ${p['d']}$? Express your answer in terms of $\\pi$.",
        lambda p: Rational(p["d"], 2) ** 2 * pi,
        lambda p: f"The radius is $\\frac{{{p['d']}}}{{2}}$ and the area is $\\pi r^2$.",
    ),
}


# -- intermediate algebra ----------------------------------------------------------------------
INTERMEDIATE_ALGEBRA = {
    1: Template(
        lambda rng: {"n": rng.randint(1, 99_999)},
        lambda p: f"Evaluate $i^{{{p['n']}}}$, where $i^2 = -1$.",
        lambda p: sympy.I ** p["n"],
        lambda p: f"Powers of $i$ repeat every $4$, and ${p['n']} \\equiv {p['n'] % 4} \\pmod 4$.",
    ),
    2: Template(
        lambda rng: {"a": rng.randint(-99, 99), "b": rng.randint(-99, 99)},
        lambda p: f"Compute $|{p['a']} - ({p['b']})|$.",
        lambda p: abs(p["a"] - p["b"]),
        lambda p: f"${p['a']} - ({p['b']}) = {p['a'] - p['b']}$.",
    ),
    3: Template(
        lambda rng: {"b": rng.randint(-9, 9), "c": rng.randint(-20, 20), "r": rng.randint(-9, 9)},
        lambda p: f"Find the remainder when ${quadratic(p['b'], p['c'])}$ is divided by $x {signed(-p['r'])}$.",
        lambda p: p["r"] ** 2 + p["b"] * p["r"] + p["c"],
        lambda p: f"By the remainder theorem the remainder is the value at $x = {p['r']}$.",
    ),
    4: Template(
        lambda rng: {"a": nonzero(rng, -12, 12), "b": rng.randint(-30, 30), "c": rng.randint(-9, 9), "d": nonzero(rng, -9, 9)},
        lambda p: f"Find the sum of the roots of ${polynomial((p['a'], 'x^3'), (p['b'], 'x^2'), (p['c'], 'x'), (p['d'], ''))} = 0$.",
        lambda p: Rational(-p["b"], p["a"]),
        lambda p: "By Vieta's formulas the sum of the roots is $-\\frac{b}{a}$.",
    ),
    5: Template(
        lambda rng: {"b": rng.randint(-60, 60), "c": rng.randint(-200, 200)},
        lambda p: f"Find the minimum value of ${quadratic(p['b'], p['c'])}$ over all real $x$.",
        lambda p: p["c"] - Rational(p["b"] ** 2, 4),
        lambda p: f"Completing the square, the minimum is at $x = {latex(Rational(-p['b'], 2))}$.",
    ),
}


# -- precalculus -------------------------------------------------------------------------------
def _pmatrix(*rows: tuple[int, ...]) -> str:
    return "\\begin{pmatrix} " + " \\\\ ".join(" & ".join(map(str, row)) for row in rows) + " \\end{pmatrix}"


PRECALCULUS = {
    1: Template(
        lambda rng: {"k": rng.randint(1, 99_999)},
        lambda p: f"Compute $\\cos({p['k']}\\pi)$.",
        lambda p: sympy.cos(p["k"] * pi),
        lambda p: f"$\\cos(k\\pi) = (-1)^k$ and ${p['k']}$ is {'even' if p['k'] % 2 == 0 else 'odd'}.",
    ),
    2: Template(
        lambda rng: {"v": [rng.randint(-9, 9) for _ in range(4)]},
        lambda p: f"Compute ${_pmatrix((p['v'][0],), (p['v'][1],))} \\cdot {_pmatrix((p['v'][2],), (p['v'][3],))}$.",
        lambda p: p["v"][0] * p["v"][2] + p["v"][1] * p["v"][3],
        lambda p: f"The dot product is ${p['v'][0]} \\cdot {p['v'][2]} + {p['v'][1]} \\cdot {p['v'][3]}$.",
    ),
    3: Template(
        lambda rng: {"d": rng.randint(1, 9999)},
        lambda p: f"Convert ${p['d']}^\\circ$ to radians.",
        lambda p: Rational(p["d"], 180) * pi,
        lambda p: f"Multiply by $\\frac{{\\pi}}{{180}}$: ${p['d']} \\cdot \\frac{{\\pi}}{{180}}$.",
    ),
    4: Template(
        lambda rng: {"m": [rng.randint(-9, 9) for _ in range(4)]},
        lambda p: f"Compute $\\det {_pmatrix(tuple(p['m'][:2]), tuple(p['m'][2:]))}$.",
        lambda p: sympy.Matrix(2, 2, p["m"]).det(),
        lambda p: f"$\\det = ({p['m'][0]})({p['m'][3]}) - ({p['m'][1]})({p['m'][2]})$.",
    ),
    5: Template(
        lambda rng: {"v": [rng.randint(-99, 99), rng.randint(-99, 99)]},
        lambda p: f"Find the length of the vector ${_pmatrix((p['v'][0],), (p['v'][1],))}$. Express your answer in simplest radical form.",
        lambda p: sqrt(p["v"][0] ** 2 + p["v"][1] ** 2),
        lambda p: f"The length is $\\sqrt{{({p['v'][0]})^2 + ({p['v'][1]})^2}}$.",
    ),
}


TEMPLATES: dict[str, Template] = {
    f"{category}/level_{level}": templates[level]
    for category, templates in {
        "prealgebra": PREALGEBRA,
        "algebra": ALGEBRA,
        "number_theory": NUMBER_THEORY,
        "counting_and_probability": COUNTING_AND_PROBABILITY,
        "geometry": GEOMETRY,
        "intermediate_algebra": INTERMEDIATE_ALGEBRA,
        "precalculus": PRECALCULUS,
    }.items()
    for level in LEVELS
}
"""Leaf skill ``<type>/level_<n>`` → its template, in taxonomy order."""


def resolve(skill: str, params: Params) -> tuple[str, str]:
    """The question and the sympy-computed answer (LaTeX) of a procedural problem, from its parameters."""
    template = TEMPLATES[skill]
    return template.render(params), latex(template.solve(params))

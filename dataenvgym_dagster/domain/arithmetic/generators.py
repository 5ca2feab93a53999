"""One problem generator per leaf skill. Each returns (question, answer) in plain notation."""

from __future__ import annotations

import random
from collections.abc import Callable

Generator = Callable[[random.Random], tuple[str, str]]


def _uniform(start: int, stop: int) -> Callable[[random.Random], int]:
    """A function drawing ``rng.randrange(start, stop)``: the same number from the same draws of ``rng.getrandbits``.

    This is how CPython draws it (``randint(a, b)`` is ``randrange(a, b + 1)``), less the checks
    and conversions of its arguments, which were most of the time generating spent in ``random``;
    ours are integers with ``start < stop``, and the width and bit count are worked out once per
    range, not per draw. test_arithmetic_domain.py pins the equivalence on the running Python.
    """
    width = stop - start
    bits = width.bit_length()  # as in Random._randbelow_with_getrandbits: not (width - 1), so powers of two too

    def draw(rng: random.Random) -> int:
        r = rng.getrandbits(bits)
        while r >= width:
            r = rng.getrandbits(bits)
        return start + r

    return draw


def _digits(n: int) -> Callable[[random.Random], int]:
    """Draws a number with exactly ``n`` digits (0-9 for n=1)."""
    return _uniform(0, 10) if n == 1 else _uniform(10 ** (n - 1), 10**n)


def _addition(n: int, carry: bool | None) -> Generator:
    digits = _digits(n)
    places = [10**i for i in range(n)]

    def carries(a: int, b: int) -> bool:
        for place in places:
            if a // place % 10 + b // place % 10 >= 10:
                return True
        return False

    def generate(rng: random.Random) -> tuple[str, str]:
        while True:
            a, b = digits(rng), digits(rng)
            # The carry is looked at only when the skill asks (``or`` stops first): most draws are one_digit.
            if carry is None or carries(a, b) == carry:
                return f"{a}+{b}", str(a + b)

    return generate


def _subtraction(borrow: bool) -> Generator:
    digits = _digits(2)

    def generate(rng: random.Random) -> tuple[str, str]:
        while True:
            a, b = digits(rng), digits(rng)
            a, b = max(a, b), min(a, b)
            has_borrow = (a % 10) < (b % 10)
            if has_borrow == borrow:
                return f"{a}-{b}", str(a - b)

    return generate


def _multiplication(left_digits: int, smallest_right: int) -> Generator:
    left, right = _digits(left_digits), _uniform(smallest_right, 10)

    def generate(rng: random.Random) -> tuple[str, str]:
        a = left(rng)
        b = right(rng)
        return f"{a}*{b}", str(a * b)

    return generate


_two_digits, _two_to_nine, _one_digit = _digits(2), _uniform(2, 10), _digits(1)


def _modulo(rng: random.Random) -> tuple[str, str]:
    a, b = _two_digits(rng), _two_to_nine(rng)
    return f"{a}%{b}", str(a % b)


def _comparison(n: int) -> Generator:
    digits = _digits(n)

    def generate(rng: random.Random) -> tuple[str, str]:
        a = digits(rng)
        # One in five comparisons is between equal numbers, so '=' is learnable.
        b = a if rng.random() < 0.2 else digits(rng)
        return f"{a}?{b}", "<" if a < b else ">" if a > b else "="

    return generate


def _two_step(rng: random.Random) -> tuple[str, str]:
    a, b, c = _one_digit(rng), _one_digit(rng), _two_to_nine(rng)
    if rng.random() < 0.5:
        return f"({a}+{b})*{c}", str((a + b) * c)
    return f"{a}*{c}+{b}", str(a * c + b)


GENERATORS: dict[str, Generator] = {
    "addition/one_digit": _addition(1, None),
    "addition/two_digit_no_carry": _addition(2, False),
    "addition/two_digit_carry": _addition(2, True),
    "addition/three_digit": _addition(3, None),
    "subtraction/no_borrow": _subtraction(False),
    "subtraction/borrow": _subtraction(True),
    "multiplication/one_digit": _multiplication(1, 0),
    "multiplication/two_by_one_digit": _multiplication(2, 2),
    "modulo/by_one_digit": _modulo,
    "comparison/two_digit": _comparison(2),
    "comparison/three_digit": _comparison(3),
    "two_step/mixed": _two_step,
}

"""What the teacher must know about each domain's problems to write them in the student's format."""

from __future__ import annotations

DOMAIN_BRIEFS: dict[str, str] = {
    "arithmetic": (
        "The domain is integer arithmetic. A question is a bare expression without spaces or '=' "
        "over non-negative integer literals and the operators + - * % and parentheses, "
        "for example `12+39`, `84-27`, `7*8`, `53%6` or `(3+4)*2`. A comparison question joins two "
        "numbers with `?`, for example `17?42`, and its answer is `<`, `>` or `=`. Every other "
        "answer is the exact result as a plain integer with no sign, spaces or units, e.g. `51`. "
        "Results are never negative: in a subtraction the first number is the larger."
    ),
}

GENERIC_BRIEF = "Write each question exactly as a student would see it and each answer as the exact, shortest correct answer."


def domain_brief(domain: str) -> str:
    """The domain's brief, or a generic one for a domain without its own."""
    return DOMAIN_BRIEFS.get(domain, GENERIC_BRIEF)

"""Answers of MATH solutions and completions: their final ``\\boxed{…}`` (or ``\\fbox{…}``), braces balanced.

A solution may state a final answer in several boxes joined by "and", "or" or a comma
(``$x = \\boxed{2}$ or $x = \\boxed{3}$``); :func:`boxed_answer` keeps them all (``2, 3``), as
math-verify reads such a run of boxes as one set of answers, so that a partial answer is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_BOX = re.compile(r"\\(?:boxed|fbox)\s*(?=\{)|\\boxed\s+(?=[^\s{])")
# What may stand between two boxes of one answer: a connective, dollar signs and a `<variable> =`.
_JOIN = re.compile(
    r"\s*\$*\s*(?:,|;|,?\s*and|,?\s*or|,?\s*\\(?:text|textrm|mbox)\{\s*(?:and|or)\s*\})\s*(?:\\quad|\\qquad)?\s*\$*\s*"
    r"(?:[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?\$*\s*",
)


def _boxes(text: str) -> Iterator[tuple[int, int, str]]:
    """Every complete box of ``text``: (where ``\\boxed`` starts, where the box ends, its contents)."""
    for match in _BOX.finditer(text):
        start = match.end()
        if text[start] != "{":
            token = re.match(r"[^\s$]+", text[start:])
            if token:
                yield match.start(), start + token.end(), token.group(0)
            continue
        depth = 0
        for position in range(start, len(text)):
            character = text[position]
            if character == "\\":
                continue
            if character == "{" and text[position - 1] != "\\":
                depth += 1
            elif character == "}" and text[position - 1] != "\\":
                depth -= 1
                if depth == 0:
                    yield match.start(), position + 1, text[start + 1 : position].strip()
                    break


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{…}`` or ``\\fbox{…}`` in ``text``, or ``None`` if there is none.

    Braces are balanced (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); the brace-less form
    ``\\boxed 5`` (used in a few MATH solutions) gives the token after it. An unclosed box is
    treated as absent.
    """
    boxes = list(_boxes(text))
    return boxes[-1][2] if boxes else None


def boxed_answer(text: str) -> str | None:
    """The final answer of ``text``: its last box together with the boxes joined to it by "and", "or"
    or a comma, contents separated by ``, `` (``x = \\boxed{2} or x = \\boxed{3}`` gives ``2, 3``);
    ``None`` without a complete box."""
    boxes = list(_boxes(text))
    if not boxes:
        return None
    run = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not _JOIN.fullmatch(text[box[1] : run[0][0]]):
            break
        run.insert(0, box)
    return ", ".join(content for _, _, content in run)

"""Reference answers of MATH solutions: the last ``\\boxed{…}`` (or ``\\fbox{…}``), braces balanced."""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*(?=\{)|\\boxed\s+(?=[^\s{])")


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{…}`` or ``\\fbox{…}`` in ``text``, or ``None`` if there is none.

    Braces are balanced (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); the brace-less form
    ``\\boxed 5`` (used in a few MATH solutions) gives the token after it. An unclosed box is
    treated as absent.
    """
    for match in reversed(list(_BOX.finditer(text))):
        start = match.end()
        if text[start] != "{":
            token = re.match(r"[^\s$]+", text[start:])
            return token.group(0) if token else None
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
                    return text[start + 1 : position].strip()
    return None

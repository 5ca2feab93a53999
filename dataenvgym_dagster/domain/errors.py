"""Errors about what a user wrote or pointed at, in one line: pydantic validation errors as
``<field>: <what is wrong>`` (without pydantic's own report), and files that are not UTF-8 or not readable.

pydantic's report spans lines, repeats the input (``input_value=…``) and links to its
documentation. Anything a user wrote (the catalogue, a benchmark source's options, a student
override) is described with these instead, so the failure stays one line on the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

MAX_LISTED = 3


SHOWN_CHARACTERS = 60


def flat(text: str) -> str:
    """``text`` on one line: every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def shown(value: Any) -> str:
    """A value as a message quotes it: mappings and lists by their kind, not their contents; text on one
    line and cut after 60 characters."""
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = flat(str(value))
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"


def describe_problem(error: dict[str, Any]) -> str:
    """What is wrong in one of pydantic's ``error.errors()`` items, and what is allowed where it says."""
    kind, message, value = error["type"], error["msg"], error.get("input")
    if kind == "literal_error":
        allowed = str(error.get("ctx", {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{shown(value)} is not allowed; allowed values: {allowed}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting (a typo?)"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if message.startswith("Input should be "):
        return f"must be {message.removeprefix('Input should be ')}, not {shown(value)}"
    return f"{message} (got {shown(value)})"


def field_name(error: dict[str, Any], prefix: str = "") -> str:
    """The dotted field of an error item (pydantic's ``function-…`` validator steps left out)."""
    parts = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    return ".".join(([prefix] if prefix else []) + parts) or prefix or "the value"


def one_line(error: ValidationError, prefix: str = "") -> str:
    """Every distinct problem of ``error`` as ``<prefix>.<field>: <problem>``, joined by ``; `` (at most three)."""
    problems = list(dict.fromkeys(flat(f"{field_name(item, prefix)}: {describe_problem(item)}") for item in error.errors()))
    more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return "; ".join(problems[:MAX_LISTED]) + more


def read_utf8_text(path: Path, what: str, error: type[Exception], fix: str) -> str:
    """The text of a file a user points at; one that is not UTF-8 (``fix`` says what to do) or cannot be
    read (a folder, no permission) raises ``error`` naming ``what`` and the path. A missing file raises
    ``FileNotFoundError``, which each caller turns into its own message with the layout it expects."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as problem:
        raise error(f"{what} {path} is not UTF-8 text (byte {problem.start}: {problem.reason}); {fix}") from None
    except OSError as problem:
        raise error(f"{what} {path} cannot be read: {problem.strerror or problem}") from None

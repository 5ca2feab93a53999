"""Tolerant parsing of a model's reply into a pydantic model.

Endpoints with structured output return bare JSON. Others wrap it in prose or a Markdown code
fence, or return the list without its enclosing object; all of those are accepted. Anything
else raises ``ReplyParseError``, which the client retries a bounded number of times.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class ReplyParseError(ValueError):
    """A reply that holds no JSON value matching the expected model."""


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text``: the whole text, a fenced block, or embedded in prose."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    for block in _FENCE.findall(stripped):
        try:
            return json.loads(block.strip())
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
            return value
        except json.JSONDecodeError:
            continue
    raise ReplyParseError(f"the reply holds no JSON object: {_excerpt(text)!r}")


def parse_reply(text: str | None, model: type[M]) -> M:
    """``text`` parsed into ``model``; ``ReplyParseError`` says why it cannot be."""
    if not text:
        raise ReplyParseError("the reply is empty")
    value = extract_json(text)
    # A bare list for a model with one list field: the model forgot the enclosing object.
    list_fields = [name for name, field in model.model_fields.items() if getattr(field.annotation, "__origin__", None) is list]
    if isinstance(value, list) and len(model.model_fields) == 1 and list_fields:
        value = {list_fields[0]: value}
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors()[:3])
        raise ReplyParseError(f"the reply does not match {model.__name__} ({problems}): {_excerpt(text)!r}") from None


def _excerpt(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

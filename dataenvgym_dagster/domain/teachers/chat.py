"""What an LLM-backed teacher asks of a chat model, and what it gets back.

The domain layer renders prompts and parses replies; the machinery (``machinery/teacher``)
sends them, retries, caches and accounts for them. This module is the narrow interface
between the two, so the teacher's logic can be read (and tested) without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Reply = TypeVar("Reply", bound=BaseModel)


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """One logical call: rendered messages, what it is for, and the seed that makes it repeatable."""

    model_config = ConfigDict(frozen=True)

    purpose: str = Field(description="What the call is for, e.g. 'generate:skill_list' or 'discover:label'; ledger column.")
    messages: tuple[ChatMessage, ...]
    seed: int
    prompt_version: str = Field(description="Version of the template that rendered the messages; part of the cache key.")


class ChatReply(BaseModel):
    """The parsed reply to one request, or why there is none."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    value: Any = Field(None, description="An instance of the reply model; None when the call failed.")
    error: str | None = None
    prompt_hash: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class TeacherChat(Protocol):
    """Sends chat requests to a model and parses each reply into ``reply_model``.

    A failed request yields a reply with ``error`` set; it never makes the others fail.
    """

    model: str

    def complete(self, requests: Sequence[ChatRequest], reply_model: type[Reply]) -> list[ChatReply]:
        """One reply per request, in order."""

    def reject(self, request: ChatRequest, prompt_hash: str, reply: str, reasons: Sequence[str]) -> None:
        """Record that the caller refused a parsed reply (and why), beside the call's own record."""

    def usage(self) -> dict[str, float | int]:
        """Totals of the calls made so far (calls, cache hits, tokens, cost): for asset metadata."""

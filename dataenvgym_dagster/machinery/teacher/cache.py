"""The teacher's reply cache: content-addressed files under ``$DATAENVGYM_HOME/teacher_cache``.

A reply is stored under the SHA-256 of everything that determines it: the model, the rendered
messages, the sampling parameters, the reply schema, the prompt template version and the seed.
Only replies that parsed are stored, so a cached reply is always usable. Re-materialising an
asset with unchanged inputs therefore makes no calls, and a whole experiment can be replayed
from the cache with the network off.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class CacheMode(StrEnum):
    live = "live"  # read the cache, call the endpoint on a miss, store the reply
    replay = "replay"  # read the cache only; a miss is an error (no network needed)
    refresh = "refresh"  # always call the endpoint and overwrite the cached reply


class CacheMissError(LookupError):
    """Replay mode met a request whose reply is not in the cache."""


class CachedReply(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_hash: str
    model: str
    purpose: str
    content: str
    input_tokens: int
    output_tokens: int
    request: dict[str, Any]  # what was sent (never the API key): for a reader of the cache


def prompt_hash(key: dict[str, Any]) -> str:
    """The SHA-256 of a request's canonical JSON form."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


class ReplyCache:
    """Cached replies, one JSON file per prompt hash, fanned out by the hash's first two digits."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> CachedReply | None:
        try:
            return CachedReply.model_validate_json(self.path(digest).read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a damaged entry is a miss; the next live call rewrites it

    def put(self, reply: CachedReply) -> None:
        path = self.path(reply.prompt_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_text(reply.model_dump_json(indent=1))
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

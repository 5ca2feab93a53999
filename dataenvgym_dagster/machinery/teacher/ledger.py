"""The teacher ledger: one warehouse row per logical call (table ``teacher_calls``).

Unlike other tables, the ledger is append-only: every batch of calls lands in a new Parquet
file, so re-materialising an iteration adds its (cache-hit, zero-cost) rows beside the rows of
the calls that were paid for, instead of replacing them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse


class CallRecord(BaseModel):
    """What one logical call cost and how it went. Cache hits cost nothing and count no tokens."""

    model_config = ConfigDict(frozen=True)

    purpose: str
    model: str
    prompt_version: str
    prompt_hash: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = Field(0.0, description="Wall time from the first attempt to the last reply, seconds.")
    attempts: int = Field(0, description="HTTP requests made; 0 for a cache hit.")
    cache_hit: bool = False
    outcome: str = Field("ok", description="ok, failed (transport gave up or status error), unparsed (replies never parsed) "
                         "or refused (parsed, but the caller refused it: the reason and reply are in error).")
    error: str | None = None
    recorded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Ledger(Protocol):
    def record(self, calls: Sequence[CallRecord]) -> None:
        """Store the records of one batch of calls."""


class MemoryLedger:
    """Keeps records in a list; for benchmarks and callers without a warehouse."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, calls: Sequence[CallRecord]) -> None:
        self.calls.extend(calls)


class WarehouseLedger:
    """Appends records to ``teacher_calls`` under (domain, experiment, iteration_<t>)."""

    def __init__(self, warehouse: Warehouse, *, domain: str, experiment: str, iteration: int) -> None:
        self.warehouse = warehouse
        self.domain, self.experiment, self.iteration = domain, experiment, iteration
        self.calls: list[CallRecord] = []

    def record(self, calls: Sequence[CallRecord]) -> None:
        if not calls:
            return
        self.calls.extend(calls)
        rows = [
            {"domain": self.domain, "experiment": self.experiment, "iteration": self.iteration, **call.model_dump()}
            for call in calls
        ]
        batch = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        key = [self.domain, self.experiment, f"iteration_{self.iteration}", batch]
        self.warehouse.write("teacher_calls", key, pl.DataFrame(rows, schema=TABLES["teacher_calls"]))


def summary(calls: Sequence[CallRecord]) -> dict[str, float | int]:
    """Totals for asset metadata and logs: calls, cache hits, failures, tokens and cost."""
    return {
        "teacher_calls": len(calls),
        "teacher_cache_hits": sum(call.cache_hit for call in calls),
        "teacher_failed_calls": sum(call.outcome != "ok" for call in calls),
        "teacher_requests": sum(call.attempts for call in calls),
        "teacher_input_tokens": sum(call.input_tokens for call in calls),
        "teacher_output_tokens": sum(call.output_tokens for call in calls),
        "teacher_cost_usd": round(sum(call.cost_usd for call in calls), 6),
    }

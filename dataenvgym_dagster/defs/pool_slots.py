"""The cluster profile's event log storage: Dagster's PostgreSQL one, with no step left waiting
for a pool slot that is free.

Dagster (1.13) hands out a pool's slots through a queue of pending steps. A step that asks for a
slot first checks whether one is unassigned, then enqueues itself, assigned or not, by that
answer; a step that ends frees its slot and assigns it to the first step in the queue. The two
are separate transactions, so they can interleave:

1. run B's step asks: no slot is unassigned (run A's step holds the only one);
2. run A's step ends: it frees the slot and assigns it to the queue, which is still empty;
3. run B's step enqueues itself unassigned.

Nothing frees a slot of that pool again, so run B waits for ever with the slot free (seen in
``test_cluster_profile.py``: two experiments, ``student=1``). Here a step that finds itself
unassigned while the pool has an unassigned slot assigns the queue's first step (the one Dagster
would have assigned, by priority then age) and asks again. Its run asks again every few seconds
(Dagster's back-off, at most 15 s), so a stranded step gets the slot on its next try. Assigning
more steps than slots is harmless: a slot row is still taken under a row lock, and an assigned
step without one keeps waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencyClaimStatus
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config


class PoolSafePostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` whose slot claims cannot strand a step (see the module's docstring)."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PoolSafePostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ) -> ConcurrencyClaimStatus:
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        if status.is_assigned or status.enqueued_timestamp is None or not self.has_unassigned_slots(concurrency_key):
            return status
        self.assign_pending_steps([concurrency_key])
        return super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)

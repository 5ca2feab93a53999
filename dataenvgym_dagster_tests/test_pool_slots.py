"""Pool slots on the cluster's PostgreSQL instance: a step that enqueued itself while the only slot
was being freed still gets it (``defs/pool_slots.py``), where Dagster's own storage leaves it waiting.

The interleaving is replayed step by step on a real database, through the storage's own methods,
in the order two run processes met it in ``test_cluster_profile.py``.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance
from dagster_postgres.event_log import PostgresEventLogStorage

from dataenvgym_dagster.defs.deployment import ClusterSettings, apply_pool_limits, write_instance
from dataenvgym_dagster.defs.pool_slots import PoolSafePostgresEventLogStorage

from .cluster import Cluster

pytestmark = [pytest.mark.cluster]

POOL = "student"
RUNS = ("run-a", "run-b", "run-c")


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    cluster = Cluster(tmp_path_factory.mktemp("pool_slots"))
    try:
        yield cluster.start_postgres()
    finally:
        cluster.stop()


@pytest.fixture
def instance(postgres_url, tmp_path, monkeypatch):
    """The cluster profile's instance as ``deployment init`` writes it, pools at their defaults (student=1)."""
    monkeypatch.setenv("DATAENVGYM_POSTGRES_URL", postgres_url)
    settings = ClusterSettings()
    write_instance(tmp_path, settings)
    with DagsterInstance.from_config(str(tmp_path)) as opened:
        for run in RUNS:  # each test starts with every slot free and nothing queued
            opened.event_log_storage.free_concurrency_slots_for_run(run)
        apply_pool_limits(opened, settings.pool_limits)
        yield opened


def strand(storage, waiting: tuple[str, str]) -> None:
    """Run A's step holds the only slot; run B's step (``waiting``) asks while A's step ends:

    B finds no unassigned slot; A frees its slot and assigns the (empty) queue; B enqueues itself
    unassigned, by the answer it had."""
    assert storage.claim_concurrency_slot(POOL, "run-a", "it1_checkpoint").is_claimed
    unassigned = storage.has_unassigned_slots(POOL)
    storage.free_concurrency_slot_for_step("run-a", "it1_checkpoint")
    storage.add_pending_step(POOL, *waiting, should_assign=unassigned)
    assert not unassigned


def test_the_cluster_instance_uses_the_storage_that_cannot_strand_a_step(instance):
    assert type(instance.event_log_storage) is PoolSafePostgresEventLogStorage
    # Run processes and Celery workers rebuild the instance from its reference, which must name the class too.
    with DagsterInstance.from_ref(instance.get_ref()) as rebuilt:
        assert type(rebuilt.event_log_storage) is PoolSafePostgresEventLogStorage


def test_dagsters_own_storage_leaves_a_step_stranded_with_the_slot_free(instance, postgres_url):
    # If this starts to fail, Dagster has fixed the race and defs/pool_slots.py can go.
    plain = PostgresEventLogStorage(postgres_url)
    strand(plain, ("run-b", "it2_checkpoint"))
    for _ in range(3):  # every retry of run B's step: blocked, with the one slot free
        assert not plain.claim_concurrency_slot(POOL, "run-b", "it2_checkpoint").is_claimed
    info = plain.get_concurrency_info(POOL)
    assert (info.slot_count, info.active_slot_count, info.pending_step_count) == (1, 0, 1)


def test_a_stranded_step_gets_the_free_slot_on_its_next_try_and_holds_it_alone(instance):
    storage = instance.event_log_storage
    strand(storage, ("run-b", "it2_checkpoint"))
    assert storage.claim_concurrency_slot(POOL, "run-b", "it2_checkpoint").is_claimed
    # The pool still has one slot: a third step waits until run B's ends, then gets it.
    assert not storage.claim_concurrency_slot(POOL, "run-c", "it1_evaluate").is_claimed
    assert storage.get_concurrency_info(POOL).active_run_ids == {"run-b"}
    storage.free_concurrency_slot_for_step("run-b", "it2_checkpoint")
    assert storage.claim_concurrency_slot(POOL, "run-c", "it1_evaluate").is_claimed


def test_two_stranded_steps_get_the_slot_in_dagsters_order_one_at_a_time(instance):
    storage = instance.event_log_storage
    strand(storage, ("run-b", "it2_checkpoint"))
    storage.add_pending_step(POOL, "run-c", "it1_evaluate", priority=5)  # enqueued later, unassigned, higher priority
    # Whoever asks first, the slot goes to the queue's first step (priority, then age), as Dagster assigns it.
    assert not storage.claim_concurrency_slot(POOL, "run-b", "it2_checkpoint").is_claimed
    assert storage.claim_concurrency_slot(POOL, "run-c", "it1_evaluate").is_claimed
    assert not storage.claim_concurrency_slot(POOL, "run-b", "it2_checkpoint").is_claimed
    storage.free_concurrency_slot_for_step("run-c", "it1_evaluate")
    assert storage.claim_concurrency_slot(POOL, "run-b", "it2_checkpoint").is_claimed

"""One run per partition at a time, whoever starts it.

Runs launched from the UI, the automation sensor or a schedule go through Dagster's run queue,
whose tag concurrency limit (``dagster/partition``, one per value; see ``defs/instance.py``)
starts at most one run per partition and holds the others queued. ``dataenvgym run`` executes in
its own process, outside the queue, so it takes its turn here: an exclusive lock per partition
between CLI processes (released by the kernel however the process ends), and, under that lock, a
look at the instance's runs for one queued or in progress from elsewhere. The queue in turn
counts the CLI's runs, which carry the same partition tag, as in progress.

A second ``dataenvgym run`` of a partition in progress refuses at once with one line naming the
run and what to do, or, asked to (``--wait``), waits for it and then does only what is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from dataenvgym_dagster.defs.instance import PARTITION_TAG
from dataenvgym_dagster.machinery.locks import Holder, LockBusy, file_lock

# Queued runs count too: the queue will start them (Dagster's IN_PROGRESS_RUN_STATUSES leaves them out).
PENDING_STATUSES = sorted({*IN_PROGRESS_RUN_STATUSES, DagsterRunStatus.QUEUED}, key=lambda status: status.value)
POLL_SECONDS = 2.0


def awaited(run) -> str | None:
    """Why ``run``, though neither queued nor in progress, will still run, or None: created and about to be
    queued (Dagster's automatic retry creates its run, then queues it), or failed with an automatic retry to come
    (run_retries, see ``defs/instance.py``). A sensor that launched the partition now would queue a second run
    behind it that redoes its work. (A run left created for good, which nothing here makes, is terminated or
    deleted in the UI.)"""
    if run.status == DagsterRunStatus.NOT_STARTED:
        return f"run {run.run_id} is created but not queued yet"
    if run.is_complete_and_waiting_to_retry:
        return (f"run {run.run_id} failed without an asset failing (its process died?); the daemon retries it from "
                "the failed step (run_retries)")
    return None


class PartitionBusyError(RuntimeError):
    """Another run of the partition is queued or in progress; the message says which and what to do."""


def pending_run(instance: DagsterInstance, partition: str):
    """The oldest run of ``partition`` that is queued or in progress, if any."""
    runs = instance.get_runs(RunsFilter(tags={PARTITION_TAG: partition}, statuses=PENDING_STATUSES))
    return runs[-1] if runs else None


def _busy(partition: str, holder: str) -> PartitionBusyError:
    return PartitionBusyError(
        f"{partition} is already being materialised by {holder}; let it finish (re-running afterwards does only "
        "what is left), or add --wait to start after it"
    )


def _describe_run(run) -> str:
    launched = run.tags.get("dagster/sensor_name") or run.tags.get("dagster/schedule_name")
    by = f", launched by {launched}" if launched else ""
    return f"run {run.run_id} ({run.job_name}, {run.status.value.lower()}{by})"


def _describe_holder(instance: DagsterInstance, partition: str, holder: Holder | None) -> str:
    run = pending_run(instance, partition)
    who = holder.describe() if holder else "another dataenvgym process"
    return f"{_describe_run(run)} of {who}" if run else who


@contextmanager
def partition_turn(
    instance: DagsterInstance, partition: str, wait: bool, say: Callable[[str], None], locks: Path | None = None,
) -> Iterator[None]:
    """Hold ``partition``'s turn while the block runs: no other ``dataenvgym run`` of it, and no run of it
    queued or in progress elsewhere. ``wait=False``: raise :class:`PartitionBusyError` at once if taken."""
    folder = locks or Path(instance.root_directory) / "locks"
    path = folder / (partition.replace("/", "_") + ".lock")

    def announce(holder: Holder | None) -> None:
        say(f"== waiting for {_describe_holder(instance, partition, holder)} to finish {partition}")

    try:
        with file_lock(path, f"dataenvgym run of {partition}", wait=wait, on_wait=announce):
            announced = False
            while (run := pending_run(instance, partition)) is not None:
                if not wait:
                    raise _busy(partition, _describe_run(run))
                if not announced:
                    say(f"== waiting for {_describe_run(run)} to finish {partition}")
                    announced = True
                time.sleep(POLL_SECONDS)
            yield
    except LockBusy as busy:
        raise _busy(partition, _describe_holder(instance, partition, busy.holder)) from None


def failed_partitions(instance: DagsterInstance, limit: int = 200) -> list[str]:
    """One line per partition whose latest run failed: the run, and why (the run's own failure message)."""
    from dagster import DagsterEventType, DagsterRunStatus

    latest: dict[str, object] = {}
    for run in instance.get_runs(limit=limit):  # newest first
        partition = run.tags.get(PARTITION_TAG)
        if partition is not None and partition not in latest:
            latest[partition] = run
    lines = []
    for partition, run in sorted(latest.items()):
        if run.status != DagsterRunStatus.FAILURE:
            continue
        records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
        why = records[-1].event_log_entry.message.splitlines()[0] if records else "see its log"
        lines.append(f"{partition}: its latest run {run.run_id} failed: {why}")
    return lines

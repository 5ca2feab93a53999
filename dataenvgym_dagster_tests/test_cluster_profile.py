"""The cluster profile for real: PostgreSQL instance, queued runs, steps on two Celery workers over
Redis, the gpu pool limited to one slot. Compared against the local profile's run of the same
micro catalogue (the ``completed`` fixture).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.deployment import GPU_POOL
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .cluster import Cluster
from .conftest import write_catalog

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EXPERIMENTS = ("skill_list", "skill_list_no_state")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running cluster on the micro catalogue whose foundations, then both experiments at once, have run."""
    root = tmp_path_factory.mktemp("cluster")
    catalog = write_catalog(root / "experiments.yaml")
    with Cluster(root / "cluster", workers=2, extra_env={"DATAENVGYM_EXPERIMENTS": str(catalog)}) as running:
        running.launch(FOUNDATIONS_JOB, "arithmetic")
        running.gpu_steps = gpu_steps(catalog)
        with running.instance() as instance:
            running.wait_for_runs(instance, 1, timeout_s=420)
            for experiment in EXPERIMENTS:
                running.launch(TEACHING_LOOP_JOB, f"arithmetic|{experiment}")
            running.wait_for_runs(instance, 3, timeout_s=600)
        yield running


def gpu_steps(catalog_file: Path) -> set[str]:
    """Step keys of the teaching loop that declare the gpu pool, from the definitions themselves."""
    defs = build_definitions(load_catalog(catalog_file), "unused", catalog_file)
    nodes = defs.resolve_job_def(TEACHING_LOOP_JOB).graph.node_dict.values()
    return {node.name for node in nodes if node.definition.pool == GPU_POOL}


def step_events(instance: DagsterInstance, run_id: str, *types: DagsterEventType) -> list:
    return [record.event_log_entry for record in instance.get_records_for_run(run_id, of_type=set(types)).records]


def gpu_step_intervals(instance: DagsterInstance, run_ids, gpu: set[str]) -> list[tuple[float, float, str]]:
    """(start, end, run:step) of every finished gpu-pool step, from the instance's step events."""
    intervals = []
    for run_id in run_ids:
        started = {}
        for entry in step_events(instance, run_id, DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            if entry.step_key not in gpu:
                continue
            if entry.dagster_event.event_type == DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            elif entry.step_key in started:
                intervals.append((started.pop(entry.step_key), entry.timestamp, f"{run_id[:8]}:{entry.step_key}"))
    return sorted(intervals)


def workers_of(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """step key → the Celery worker that executed it (from the executor's engine events)."""
    seen = {}
    for entry in step_events(instance, run_id, DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "Celery worker" in metadata:
            seen[entry.step_key] = metadata["Celery worker"].value
    return seen


def table(home: Path, sql: str) -> pl.DataFrame:
    with Warehouse(home).connect() as connection:
        return connection.sql(sql).pl()


EVALUATIONS = "SELECT iteration, split, example_id, prediction, correct FROM evaluation_results WHERE experiment = 'skill_list' ORDER BY ALL"
GENERATED = "SELECT iteration, example_id, question, answer, passed_quality_checks FROM generated_examples WHERE experiment = 'skill_list' ORDER BY ALL"


def loop_runs(instance: DagsterInstance) -> list:
    return [run for run in instance.get_runs() if run.job_name == TEACHING_LOOP_JOB]


def test_two_experiments_launched_together_both_complete(cluster):
    with cluster.instance() as instance:
        runs = instance.get_runs()
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS] * 3
        assert sorted(run.tags["dagster/partition/experiment"] for run in loop_runs(instance)) == sorted(EXPERIMENTS)


def test_steps_run_in_different_workers(cluster):
    with cluster.instance() as instance:
        workers = {worker for run in loop_runs(instance) for worker in workers_of(instance, run.run_id).values()}
    assert {worker.split("@")[0] for worker in workers} == {"worker1", "worker2"}


def test_the_gpu_pool_with_one_slot_never_lets_two_gpu_steps_overlap(cluster):
    with cluster.instance() as instance:
        runs = loop_runs(instance)
        intervals = gpu_step_intervals(instance, [run.run_id for run in runs], cluster.gpu_steps)
        starts = [instance.get_run_stats(run.run_id) for run in runs]
    # The two runs were in progress at the same time, so their gpu steps competed for the slot.
    assert max(s.start_time for s in starts) < min(s.end_time for s in starts)
    assert len(intervals) == 2 * (1 + 2 * 2)  # per run: iteration 0's evaluations (one step), then training and evaluations per iteration
    overlapping = [(a[2], b[2]) for a, b in itertools.pairwise(intervals) if b[0] < a[1]]
    assert not overlapping


def test_the_warehouse_has_no_duplicate_rows_and_matches_the_local_profile(cluster, completed):
    for key, name in (("domain, experiment, iteration, split, example_id", "evaluation_results"),
                      ("domain, experiment, iteration, example_id", "generated_examples")):
        duplicates = table(cluster.home, f"SELECT {key}, count(*) AS n FROM {name} GROUP BY ALL HAVING n > 1")
        assert duplicates.is_empty(), duplicates
    assert table(cluster.home, EVALUATIONS).equals(table(completed.home, EVALUATIONS))
    assert table(cluster.home, GENERATED).equals(table(completed.home, GENERATED))


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _step_process(cluster: Cluster, worker: str) -> int:
    """The pid of the process executing steps for ``worker`` (``worker1@host``): the Celery pool child."""
    cli = cluster.processes[worker.split("@")[0]].pid  # dagster-celery → celery (main) → pool process
    (celery_main,) = _children(cli)
    (pool_child,) = _children(celery_main)
    return pool_child


def test_a_worker_killed_mid_training_fails_the_run_clearly_and_its_retry_rebuilds_the_same_tables(cluster, completed):
    with cluster.instance() as instance:
        before = {run.run_id for run in instance.get_runs()}
        cluster.launch(TEACHING_LOOP_JOB, "arithmetic|skill_list")
        deadline = time.monotonic() + 300
        victim = None
        while victim is None and time.monotonic() < deadline:
            new = [run for run in instance.get_runs() if run.run_id not in before]
            for run in new:
                training = {k: w for k, w in workers_of(instance, run.run_id).items() if k == "it1_checkpoint"}
                if training:
                    victim = (run.run_id, training.popitem()[1])
            time.sleep(0.2)
        assert victim, "iteration_1's training step never started"
        run_id, worker = victim
        os.kill(_step_process(cluster, worker), signal.SIGKILL)

        # The daemon retries the failed run (run_retries, max_retries 1) from the failed step.
        cluster.wait_for_runs(instance, len(before) + 2, timeout_s=600)
        failed = instance.get_run_by_id(run_id)
        assert failed.status == DagsterRunStatus.FAILURE
        (failure,) = step_events(instance, run_id, DagsterEventType.RUN_FAILURE)
        message = failure.dagster_event.event_specific_data.error.message
        assert "[it1_checkpoint]: billiard.exceptions.WorkerLostError" in message and "SIGKILL" in message, message
        (retry,) = [run for run in instance.get_runs() if run.tags.get("dagster/parent_run_id") == run_id]
        assert retry.status == DagsterRunStatus.SUCCESS
    assert table(cluster.home, EVALUATIONS).equals(table(completed.home, EVALUATIONS))
    assert table(cluster.home, GENERATED).equals(table(completed.home, GENERATED))

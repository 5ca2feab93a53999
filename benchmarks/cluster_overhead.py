"""What going distributed costs: a batch of micro experiments, local profile vs cluster profile.

``local``: the embedded setup (SQLite instance, in-process executor), each experiment's runs one
after the other, as ``dataenvgym run`` does. ``cluster``: PostgreSQL, the queued run coordinator
and N Celery workers over Redis on this machine (started by ``dataenvgym_dagster_tests.cluster``;
their start-up is reported apart), every experiment launched at once after the foundations.

Per profile it prints the batch's wall time, and from the instance's step events the
orchestration overhead per step: a run's wall time minus the time its steps spent executing
(STEP_START → STEP_SUCCESS), divided by its steps. For the cluster, also the dispatch latency per
step (the executor submitting the Celery task → the worker's STEP_START), which includes waiting
for a worker and for a ``gpu`` slot, and the idle time per step: how long a run executed none of
its steps. With ``--experiments 1`` no run waits for a worker another run's step holds, so idle
time is the orchestration's own cost (the executor's polling, Celery's round trip, the worker
loading the run and its plan); with several, it also holds the waiting for a free worker.

    .venv/bin/python benchmarks/cluster_overhead.py [--experiments 4] [--workers 2] [--gpu-slots 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from dagster import DagsterEventType, DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB, run_experiment
from dataenvgym_dagster.defs.partitions import register_experiments
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster_tests.cluster import Cluster
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG, MICRO_TRAINING

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def micro_catalog(path: Path, experiments: int) -> tuple[Path, list[str]]:
    """The tests' micro catalogue with ``experiments`` seeds of the weak-skills experiment."""
    catalog = {**MICRO_CATALOG, "experiments": {"batch": {
        "policy": "weak_skills", "data_budget": 96, "training": {"settings": MICRO_TRAINING}, "seeds": list(range(experiments)),
    }}, "default_experiment": "batch_seed0"}
    path.write_text(yaml.safe_dump(catalog))
    return path, [f"batch_seed{seed}" for seed in range(experiments)]


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of ``intervals``: how long at least one of them was running."""
    busy, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy


def step_figures(instance: DagsterInstance, run_ids: list[str]) -> tuple[int, float, list[float], float]:
    """(steps, overhead seconds summed over runs, dispatch latencies, idle seconds summed over runs) from the runs' events.

    Overhead: a run's wall time minus the time its steps spent executing. Steps that execute at the
    same time (the cluster's workers) make that smaller; steps waiting for a worker held by another
    run's step make it larger. Idle: a run's wall time during which none of its steps was executing."""
    steps, overhead, dispatch, idle = 0, 0.0, [], 0.0
    for run_id in run_ids:
        stats = instance.get_run_stats(run_id)
        started, submitted, executing, intervals = {}, {}, 0.0, []
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            if event.event_type == DagsterEventType.ENGINE_EVENT and (event.message or "").startswith("Submitting celery task"):
                submitted[entry.step_key] = entry.timestamp
            elif event.event_type == DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
                if entry.step_key in submitted:
                    dispatch.append(entry.timestamp - submitted[entry.step_key])
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                intervals.append((started[entry.step_key], entry.timestamp))
                executing += entry.timestamp - started.pop(entry.step_key)
                steps += 1
        overhead += (stats.end_time - stats.start_time) - executing
        idle += (stats.end_time - stats.start_time) - busy_seconds(intervals)
    return steps, overhead, dispatch, idle


def local(root: Path, catalog_file: Path, experiments: list[str]) -> dict:
    catalog = load_catalog(catalog_file)
    defs = build_definitions(catalog, str(root / "home"), catalog_file)
    (root / "dagster").mkdir(parents=True)
    (root / "dagster" / "dagster.yaml").touch()
    with DagsterInstance.from_config(str(root / "dagster")) as instance:
        started = time.perf_counter()
        register_experiments(instance, experiments)  # run_experiment registers only its own
        results = run_experiment(defs, instance, "arithmetic", experiments[0], QUIET)
        for experiment in experiments[1:]:
            results.append(defs.resolve_job_def(TEACHING_LOOP_JOB).execute_in_process(
                partition_key=f"arithmetic|{experiment}", instance=instance, run_config=QUIET, raise_on_error=True))
        wall = time.perf_counter() - started
        assert all(result.success for result in results)
        steps, overhead, _, idle = step_figures(instance, [result.run_id for result in results])
    return {"wall": wall, "steps": steps, "overhead": overhead, "dispatch": [], "idle": idle}


def cluster(root: Path, catalog_file: Path, experiments: list[str], workers: int, gpu_slots: int) -> dict:
    started = time.perf_counter()
    with Cluster(root, workers=workers, pool_limits={"student": gpu_slots, "teacher": 8},
                 extra_env={"DATAENVGYM_EXPERIMENTS": str(catalog_file)}) as running, running.instance() as instance:
        startup = time.perf_counter() - started
        started = time.perf_counter()
        running.launch(FOUNDATIONS_JOB, "arithmetic")
        running.wait_for_runs(instance, 1)
        for experiment in experiments:
            running.launch(TEACHING_LOOP_JOB, f"arithmetic|{experiment}")
        runs = running.wait_for_runs(instance, 1 + len(experiments), timeout_s=3600)
        wall = time.perf_counter() - started
        failed = [run.run_id for run in runs if run.status.value != "SUCCESS"]
        if failed:
            raise SystemExit(f"cluster runs failed: {failed}; see {root / 'logs'}")
        steps, overhead, dispatch, idle = step_figures(instance, [run.run_id for run in runs])
    return {"wall": wall, "steps": steps, "overhead": overhead, "dispatch": dispatch, "startup": startup, "idle": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=4, help="micro experiments in the batch (seeds of one)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers of the cluster profile")
    parser.add_argument("--gpu-slots", type=int, default=2, help="slots of the gpu pool (here: CPU processes)")
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dataenvgym-cluster-benchmark-"))
    load_before = os.getloadavg()
    catalog_file, experiments = micro_catalog(root / "experiments.yaml", arguments.experiments)
    print(f"{len(experiments)} micro experiments (+ foundations) in {root}", flush=True)
    figures = {"local": local(root / "local", catalog_file, experiments)}
    print(f"local done in {figures['local']['wall']:.0f} s", flush=True)
    label = f"cluster ({arguments.workers} workers, student={arguments.gpu_slots})"
    figures[label] = cluster(root / "cluster", catalog_file, experiments, arguments.workers, arguments.gpu_slots)
    print("\n| profile | wall s | steps | overhead s/step | idle s/step | dispatch s/step (median, p90) |\n|---|---|---|---|---|---|")
    for name, f in figures.items():
        dispatch = "" if not f["dispatch"] else (
            f"{statistics.median(f['dispatch']):.2f}, {statistics.quantiles(f['dispatch'], n=10)[-1]:.2f}")
        print(f"| {name} | {f['wall']:.0f} | {f['steps']} | {f['overhead'] / f['steps']:.2f} | {f['idle'] / f['steps']:.2f} | {dispatch} |")
    ratio = figures[label]["wall"] / figures["local"]["wall"]
    print(f"\ncluster / local wall time: {ratio:.2f} (cluster services started in {figures[label]['startup']:.0f} s, not counted)")
    print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

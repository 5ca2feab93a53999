"""Jobs: the per-domain foundations, each iteration, and the whole teaching loop of an experiment.

``run_experiment`` (what ``dataenvgym run`` and ``make run`` call) materialises only what is
missing or older than its inputs, unless forced, so re-running a finished experiment is cheap.
"""

from __future__ import annotations

import os
import socket
from contextlib import nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    MultiPartitionKey,
    RepositoryDefinition,
    define_asset_job,
)

from dataenvgym_dagster.defs.loop.foundations import GROUP as FOUNDATIONS
from dataenvgym_dagster.defs.partitions import DOMAIN, loop_partition_key, register_experiments
from dataenvgym_dagster.experiments import ExperimentCatalog

FOUNDATIONS_JOB = "foundations_job"
TEACHING_LOOP_JOB = "teaching_loop_job"

# Run tags: which experiment a run belongs to, and which process runs it (see fail_abandoned_runs).
EXPERIMENT_TAG = "dataenvgym/experiment"
SEED_TAG = "dataenvgym/seed"
DOMAIN_TAG = "dataenvgym/domain"
STAGE_TAG = "dataenvgym/stage"  # foundations or iteration_<t>: what an automation run advances
PID_TAG = "dataenvgym/pid"
HOST_TAG = "dataenvgym/host"


def iteration_job_name(iteration: int) -> str:
    return f"iteration_{iteration}_job"


def jobs(catalog: ExperimentCatalog, evaluated_apart: Sequence[AssetCheckKey] = ()) -> list:
    """The jobs; ``evaluated_apart``: checks no job runs (a sensor evaluates them outside runs)."""
    iterations = [f"iteration_{t}" for t in range(catalog.iterations + 1)]
    apart = AssetSelection.checks(*evaluated_apart)
    partition_hint = (
        "A partition is one domain and one experiment (e.g. arithmetic|"
        f"{catalog.default_experiment}, the default experiment), on a domain the experiment names."
    )
    return [
        define_asset_job(
            FOUNDATIONS_JOB, AssetSelection.groups(FOUNDATIONS) - apart,
            description="Benchmark, pretraining corpus and base student of one domain (a partition is a domain). "
            "Run it once per domain before any experiment.",
        ),
        define_asset_job(
            TEACHING_LOOP_JOB, AssetSelection.groups(*iterations) - apart,
            description=f"Every iteration of one experiment, in order. {partition_hint}",
        ),
        *(
            define_asset_job(
                iteration_job_name(t), AssetSelection.groups(group) - apart,
                description=f"Iteration {t} of one experiment. {partition_hint}",
            )
            for t, group in enumerate(iterations)
        ),
    ]


# -- materialise what is missing or stale ------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What one job run would materialise for one partition, and why."""

    job: str
    partition: str | MultiPartitionKey
    stale: list[AssetKey]  # in graph order
    total: int
    # Why each stale asset is redone: "never materialised", or which input is newer or itself redone.
    causes: dict[AssetKey, str] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.stale:
            return f"== {self.job} for {self.partition}: up to date, nothing to do (--force redoes it)"
        if len(self.stale) == self.total:
            return f"== {self.job} for {self.partition}: all {self.total} assets"
        names = ", ".join(key.to_user_string() for key in self.stale)
        return f"== {self.job} for {self.partition}: {len(self.stale)} of {self.total} assets are missing or older than their inputs: {names}"


NEVER_MATERIALISED = "never materialised"


def _latest_storage_id(instance: DagsterInstance, key: AssetKey, partition: str) -> int | None:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    return records[0].storage_id if records else None


def plan_job(
    defs: Definitions | RepositoryDefinition,
    instance: DagsterInstance,
    job: str,
    partition: str | MultiPartitionKey,
    force: bool = False,
) -> Plan:
    """The assets of ``job`` to materialise for ``partition``: missing ones, those older than an input
    (materialised before it), and everything downstream of those. ``force``: all of them.

    ``defs``: the definitions, or the repository a sensor or a check sees (``context.repository_def``)."""
    repository = defs if isinstance(defs, RepositoryDefinition) else defs.get_repository_def()
    graph = repository.asset_graph
    selected = set(repository.get_job(job).asset_layer.executable_asset_keys)
    order = [key for key in graph.toposorted_asset_keys if key in selected]
    if force:
        return Plan(job, partition, order, len(order))

    def partition_of(key: AssetKey) -> str:
        # Foundations are partitioned by domain; loop assets by domain × experiment.
        if isinstance(partition, MultiPartitionKey) and graph.get(key).group_name == FOUNDATIONS:
            return partition.keys_by_dimension[DOMAIN]
        return str(partition)

    latest = {key: _latest_storage_id(instance, key, partition_of(key)) for key in order}
    causes: dict[AssetKey, str] = {}
    for key in order:
        parents = sorted(graph.get(key).parent_keys, key=lambda parent: parent.to_user_string())
        own = latest[key]
        if own is None:
            causes[key] = NEVER_MATERIALISED
            continue
        # An input materialised after it is the first cause to name; else an input that is itself redone.
        theirs = {parent: latest.get(parent) or _latest_storage_id(instance, parent, partition_of(parent)) for parent in parents}
        newer = [parent for parent in parents if (theirs[parent] or 0) > own]
        redone = [parent for parent in parents if parent in causes]
        if newer:
            causes[key] = f"its input {newer[0].to_user_string()} was materialised after it"
        elif redone:
            causes[key] = f"its input {redone[0].to_user_string()} is to be redone"
    return Plan(job, partition, list(causes), len(order), causes)


def run_tags(domain: str, experiment: str | None = None, seed: int | None = None) -> dict[str, str]:
    """Tags of a run executed by this process: what it runs, and which process (so a killed one can be found)."""
    tags = {DOMAIN_TAG: domain, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    if experiment is not None:
        tags[EXPERIMENT_TAG] = experiment
    if seed is not None:
        tags[SEED_TAG] = str(seed)
    return tags


def run_experiment(
    defs: Definitions,
    instance: DagsterInstance,
    domain: str,
    experiment: str,
    run_config: dict[str, Any] | None = None,
    force: bool = False,
    seed: int | None = None,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
    wait: bool = False,
) -> list[ExecuteInProcessResult]:
    """Materialise the domain's foundations, then every iteration of ``domain|experiment``, in process.

    The experiment is registered as a partition first, so no daemon is needed. Only assets that
    are missing, or older than one of their inputs, are materialised (with everything downstream
    of them); ``force`` redoes all. Stops after the first run that fails; the results say which.
    One run per partition at a time (``defs/turns.py``): if ``domain|experiment`` is being
    materialised elsewhere this raises ``PartitionBusyError`` at once, or with ``wait`` waits for it;
    a domain's foundations being materialised for another experiment are always waited for.
    """
    from dataenvgym_dagster.defs.turns import partition_turn

    register_experiments(instance, [experiment])
    loop = loop_partition_key(domain, experiment)
    results = []
    with partition_turn(instance, str(loop), wait, say):
        for job, partition in ((FOUNDATIONS_JOB, domain), (TEACHING_LOOP_JOB, loop)):
            with partition_turn(instance, domain, True, say) if job == FOUNDATIONS_JOB else nullcontext():
                plan = plan_job(defs, instance, job, partition, force)
                say(plan.describe())
                if not plan.stale:
                    continue
                result = defs.resolve_job_def(job).execute_in_process(
                    partition_key=partition, instance=instance, run_config=run_config, raise_on_error=False,
                    asset_selection=None if len(plan.stale) == plan.total else plan.stale,
                    tags=run_tags(domain, *((experiment, seed) if job == TEACHING_LOOP_JOB else ())),
                )
            results.append(result)
            if not result.success:
                break
    return results


def check_benchmark(catalog: ExperimentCatalog, domain: str, home: Path, force: bool = False) -> None:
    """Load ``domain``'s benchmark once before anything is written, unless the home already holds it:
    a missing or malformed benchmark file raises ``BenchmarkFormatError`` (the path and the expected
    layout) before the home, a run, the pretraining corpus or a base student exist."""
    from dataenvgym_dagster.defs.resources import default_storage, open_storage
    from dataenvgym_dagster.domain.registry import get_domain
    from dataenvgym_dagster.loop.steps import benchmark_splits

    storage = open_storage(default_storage(home), home)
    if not force and storage.exists("warehouse", "benchmark_problems", domain, "benchmark_splits.parquet"):
        return
    benchmark_splits(get_domain(domain), catalog.domain(domain).benchmark)


# -- runs whose process died -------------------------------------------------------------------
def _process_alive_since(pid: int, started: float) -> bool:
    """Whether process ``pid`` exists and was started no later than ``started`` (epoch seconds).

    A pid that was reused by a younger process counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        process_started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return True  # no /proc: trust that the pid exists
    return process_started <= started + 2


def _run_pid(instance: DagsterInstance, run) -> int | None:
    """The pid that executes ``run``: our tag, or the in-process executor's engine event."""
    if PID_TAG in run.tags:
        return int(run.tags[PID_TAG]) if run.tags.get(HOST_TAG, socket.gethostname()) == socket.gethostname() else None
    from dagster import DagsterEventType

    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT).records:
        metadata = record.event_log_entry.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata:
            return int(metadata["pid"].value)
    return None


def fail_abandoned_runs(instance: DagsterInstance, cause: str | None = None) -> list[str]:
    """Mark runs as failed whose process was killed (e.g. SIGKILL) while they were in progress;
    ``cause``: why their process ended, when known (e.g. a full disk).

    Dagster's run monitoring cannot check the health of runs executed in process or by the
    default run launcher, so such runs would otherwise show as in progress forever. Returns the
    run ids it marked."""
    from dagster import DagsterRunStatus, RunsFilter

    marked = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        pid = _run_pid(instance, run)
        record = instance.get_run_record_by_id(run.run_id)
        started = (record.start_time if record and record.start_time else record.create_timestamp.timestamp()) if record else 0
        if pid is None or _process_alive_since(pid, started):
            continue
        why = cause or "killed, e.g. by SIGKILL or out of memory"
        instance.report_run_failed(
            run,
            f"The process running this run (pid {pid}) ended without finishing it ({why}). Its completed assets are "
            "kept; re-run it to materialise the rest (dataenvgym run skips what is done).",
        )
        marked.append(run.run_id)
    return marked


def fail_own_runs(instance: DagsterInstance, cause: str) -> list[str]:
    """Mark the runs this process has in progress as failed with ``cause`` (the process cannot go on,
    e.g. the disk is full, and Dagster could not record the failure itself). The run ids marked."""
    from dagster import DagsterRunStatus, RunsFilter

    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    marked = []
    for run in instance.get_runs(RunsFilter(tags=tags, statuses=[DagsterRunStatus.STARTED])):
        instance.report_run_failed(run, f"{cause}. Its completed assets are kept.")
        marked.append(run.run_id)
    return marked

"""Schedules: an experiment with ``schedule: "<cron>"`` in the catalogue re-runs on that cron.

Each tick launches ``teaching_loop_job`` once per domain the experiment runs on and per seed, with
tags naming the experiment and the seed. A partition that already has a run in progress is
skipped at that tick rather than launched twice. A tick registers its experiment as a partition
if nothing has yet. Schedules are definitions: a ``schedule:`` added to the catalogue takes effect
when the code location reloads.
"""

from __future__ import annotations

from dagster import (
    DagsterInstance,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._utils.schedules import is_valid_cron_string

from dataenvgym_dagster.defs.jobs import DOMAIN_TAG, EXPERIMENT_TAG, SEED_TAG, TEACHING_LOOP_JOB
from dataenvgym_dagster.defs.partitions import loop_partition_key, register_experiments
from dataenvgym_dagster.defs.turns import PENDING_STATUSES
from dataenvgym_dagster.experiments import ExperimentCatalog


def schedule_name(experiment: str) -> str:
    return f"{experiment}_schedule"


def _in_progress(instance: DagsterInstance, partition: str) -> bool:
    runs = instance.get_runs(RunsFilter(tags={"dagster/partition": partition}, statuses=PENDING_STATUSES), limit=1)
    return bool(runs)


def experiment_schedules(catalog: ExperimentCatalog, job) -> list[ScheduleDefinition]:
    """One schedule per experiment that names a ``schedule`` in the catalogue; ``job`` is teaching_loop_job."""
    schedules = []
    for name, settings in catalog.experiments.items():
        if settings.schedule is None:
            continue
        if not is_valid_cron_string(settings.schedule):
            raise ValueError(f"experiments.{name}.schedule {settings.schedule!r} is not a valid cron string, e.g. '0 3 * * *'")
        schedules.append(_schedule(catalog, name, settings.schedule, job))
    return schedules


def _schedule(catalog: ExperimentCatalog, name: str, cron: str, job) -> ScheduleDefinition:
    partitions = [key for key, run in catalog.runs.items() if run.name == name]

    @schedule(
        name=schedule_name(name), cron_schedule=cron, job=job, execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Re-runs every iteration of experiment {name} ({', '.join(partitions)}) on "
        f"{', '.join(catalog.domains_of(partitions[0]))} at {cron!r} UTC.",
    )
    def experiment_schedule(context: ScheduleEvaluationContext):
        # Schedules cannot return partition requests (sensors can), so the tick adds them itself; the
        # experiment is in the loaded catalogue, so it fits the loaded asset graph.
        register_experiments(context.instance, partitions)
        requests, skipped = [], []
        for key in partitions:
            for domain in catalog.domains_of(key):
                partition = loop_partition_key(domain, key)
                if _in_progress(context.instance, str(partition)):
                    skipped.append(f"{partition} has a run in progress")
                    continue
                seed = catalog.experiment(key).seed
                requests.append(RunRequest(
                    run_key=str(partition), partition_key=partition, job_name=TEACHING_LOOP_JOB,
                    tags={DOMAIN_TAG: domain, EXPERIMENT_TAG: name, SEED_TAG: str(seed)},
                ))
        if not requests:
            return SkipReason(f"no partition of {name} launched: {'; '.join(skipped)}")
        return requests

    return experiment_schedule

"""Experiments that advance themselves: a sensor the Dagster daemon evaluates.

For every partition of an experiment with ``automation: eager`` in the catalogue (re-read at each
tick, so an experiment added to the file is registered and advanced without a restart), the sensor
launches what is not materialised yet: the domain's foundations (one run), then every
iteration from the first incomplete one to the last, in one run of ``teaching_loop_job`` (as
``dataenvgym run`` does: each run is a fresh process that imports the code location and torch,
a few seconds that one run per iteration paid again for every iteration). It never launches a partition that has a run in
progress (so never the same partition twice at once), stops the chain at the first failed run
with the reason in the sensor's tick, and ends when the last iteration is materialised. Each
tick also marks runs whose process was killed as failed, so they neither show as in progress
forever nor hold their partition. A catalogue it cannot read fails the tick, naming the file,
line and field, rather than skipping it quietly.

A sensor rather than automation conditions on the assets: whether an experiment advances is a
per-partition choice in the catalogue, and a condition applies to every partition of an asset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from dataenvgym_dagster.defs.jobs import (
    DOMAIN_TAG,
    EXPERIMENT_TAG,
    FOUNDATIONS_JOB,
    SEED_TAG,
    STAGE_TAG,
    TEACHING_LOOP_JOB,
    fail_abandoned_runs,
)
from dataenvgym_dagster.defs.loop.foundations import GROUP as FOUNDATIONS
from dataenvgym_dagster.defs.partitions import EXPERIMENTS, loop_partition_key, registered_experiments
from dataenvgym_dagster.defs.registration import show_on_sensor_page, skip
from dataenvgym_dagster.defs.turns import PENDING_STATUSES, awaited
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.experiments.registration import RELOAD, plan_registration

SENSOR = "advance_experiments"
# Dagster's own run tags for a partition: multi-dimensional keys are tagged per dimension.
PARTITION_TAG = "dagster/partition"
# Dagster's run tag for how often the daemon retries a failed run (run_retries in dagster.yaml). The runs
# the sensors launch are retried at least once if their process dies; an asset that fails is not retried
# where the instance says so (defs/instance.py), and the chain then stops with the reason.
MAX_RETRIES_TAG = "dagster/max_retries"


@dataclass(frozen=True)
class Stage:
    name: str  # "foundations" or "iteration_<t>"
    job: str
    partition: str
    assets: tuple[AssetKey, ...]

    @property
    def iteration(self) -> int | None:
        return _iteration(self.name)


def _iteration(stage_name: str | None) -> int | None:
    """``3`` for ``iteration_3``; ``None`` for foundations (or no stage)."""
    return int(stage_name.removeprefix("iteration_")) if stage_name and stage_name.startswith("iteration_") else None


def stages(groups: dict[str, list[AssetKey]], domain: str, experiment: str) -> list[Stage]:
    """What an experiment needs, in order: the domain's foundations, then each iteration.

    ``groups``: the asset keys of each asset group (foundations, iteration_0, …) of the loaded
    definitions, whose iterations are what an experiment can run."""
    key = str(loop_partition_key(domain, experiment))
    iterations = sum(1 for group in groups if group.startswith("iteration_"))
    return [
        Stage(FOUNDATIONS, FOUNDATIONS_JOB, domain, tuple(groups[FOUNDATIONS])),
        *(Stage(f"iteration_{t}", TEACHING_LOOP_JOB, key, tuple(groups[f"iteration_{t}"])) for t in range(iterations)),
    ]


def _complete(instance: DagsterInstance, stage: Stage) -> bool:
    return all(stage.partition in instance.get_materialized_partitions(key) for key in stage.assets)


def _runs(instance: DagsterInstance, partition: str, statuses=None, limit: int | None = None):
    return instance.get_runs(RunsFilter(tags={PARTITION_TAG: partition}, statuses=statuses), limit=limit)


def next_step(
    instance: DagsterInstance, groups: dict[str, list[AssetKey]], catalog: ExperimentCatalog, domain: str, experiment: str
) -> RunRequest | SkipReason:
    """The run that advances ``domain|experiment`` by one stage, or why there is none."""
    partition = f"{domain}|{experiment}"
    ordered = stages(groups, domain, experiment)
    for position, stage in enumerate(ordered):
        if _complete(instance, stage):
            continue
        if _runs(instance, stage.partition, statuses=PENDING_STATUSES, limit=1):
            return SkipReason(f"{partition}: a run of {stage.partition} is queued or in progress; waiting for it")
        latest = _runs(instance, stage.partition, limit=1)
        if latest and (why := awaited(latest[0])):
            return SkipReason(f"{partition}: {why}; waiting for it")
        if latest and latest[0].status == DagsterRunStatus.FAILURE:
            return SkipReason(
                f"{partition}: stopped at {stage.name}, run {latest[0].run_id} failed; see its logs, fix the cause "
                f"and re-materialise {stage.name} for {stage.partition} to resume the chain"
            )
        if latest and latest[0].status == DagsterRunStatus.SUCCESS and _covered(latest[0].tags.get(STAGE_TAG), stage):
            # It ran and succeeded, yet the stage is still incomplete: relaunching would loop.
            return SkipReason(
                f"{partition}: run {latest[0].run_id} of {stage.name} succeeded without materialising every asset "
                f"of the stage (a skipped or blocked step?); materialise {stage.name} by hand to resume"
            )
        settings = catalog.experiment(experiment)
        tags = {DOMAIN_TAG: domain, EXPERIMENT_TAG: catalog.run(experiment).name, SEED_TAG: str(settings.seed), STAGE_TAG: stage.name,
                MAX_RETRIES_TAG: str(max(1, instance.run_retries_max_retries))}
        previous = latest[0].run_id if latest else "none"
        if stage.name == FOUNDATIONS:
            return RunRequest(run_key=f"{partition}:{stage.name}:after:{previous}", job_name=stage.job, partition_key=stage.partition, tags=tags)
        # This iteration and every later one, in one run: the assets of each are materialised in order.
        remaining = ordered[position:]
        return RunRequest(
            run_key=f"{partition}:{stage.name}:after:{previous}", job_name=TEACHING_LOOP_JOB,
            partition_key=loop_partition_key(domain, experiment), tags=tags,
            asset_selection=None if stage.iteration == 0 else [key for later in remaining for key in later.assets],
        )
    return SkipReason(f"{partition}: every iteration is materialised")


def _covered(stage_tag: str | None, stage: Stage) -> bool:
    """Whether a run tagged ``stage_tag`` was meant to materialise ``stage``: the same stage, or a loop run
    that started at this iteration or an earlier one (it runs every iteration from its own to the last)."""
    started = _iteration(stage_tag)
    return stage_tag == stage.name or (started is not None and stage.iteration is not None and started <= stage.iteration)


def automated(catalog: ExperimentCatalog) -> list[tuple[str, str]]:
    """(domain, experiment partition) pairs whose experiment has ``automation: eager``, on the domains it names."""
    return [(domain, key) for domain, key in catalog.pairs if catalog.experiment(key).automation == "eager"]


def advance_experiments_sensor(
    loaded: ExperimentCatalog, groups: dict[str, list[AssetKey]], jobs: list, experiments_file: Path | None = None,
    interval_seconds: int = 2,
):
    """The sensor; ``loaded`` is the catalogue the definitions were built from, ``experiments_file`` the one
    each tick re-reads (so an experiment added to it advances without a restart); ``groups`` maps each
    asset group to its keys, ``jobs`` are the jobs it launches."""

    @sensor(
        name=SENSOR,
        jobs=jobs,
        # A tick is cheap (the catalogue and a few run queries); every second of interval is paid by each
        # stage of an automated experiment, waiting for the next tick after the previous run ended.
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Advances every experiment with `automation: eager` in the catalogue: the foundations, then "
        "every iteration left in one run; "
        "stops at the first failed run and says why in its ticks. The latest tick's outcome shows as the Cursor on this page.",
    )
    def advance_experiments(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        # Runs whose process was killed would otherwise show as in progress, and hold their partition.
        for run_id in fail_abandoned_runs(context.instance):
            context.log.warning(f"marked run {run_id} as failed: its process was killed before it finished")
        catalog = load_catalog(experiments_file)  # unreadable: the tick fails, naming the file, line and field
        pairs = automated(catalog)
        if not pairs:
            return skip(context, "no experiment in the catalogue has `automation: eager`")
        # An eager experiment new to the catalogue is registered as a partition in the same tick.
        registration = plan_registration(loaded, catalog, registered_experiments(context.instance))
        requests: list[RunRequest] = []
        reasons: list[str] = []
        for domain, experiment in pairs:
            if experiment in registration.refused:
                reasons.append(f"{domain}|{experiment}: not registered: {registration.refused[experiment]}")
                continue
            if domain not in loaded.domains:
                reasons.append(f"{domain}|{experiment}: domain {domain} is not in the loaded definitions; {RELOAD}")
                continue
            step = next_step(context.instance, groups, catalog, domain, experiment)
            if isinstance(step, SkipReason):
                reasons.append(step.skip_message or "")
            elif step.job_name == FOUNDATIONS_JOB and any(r.job_name == FOUNDATIONS_JOB and r.partition_key == domain for r in requests):
                # One foundations run per domain, even when several experiments need it.
                reasons.append(f"{domain}|{experiment}: waiting for the foundations run launched for another experiment")
            else:
                requests.append(step)
        if not requests:
            return skip(context, "; ".join(reasons))
        for reason in reasons:
            context.log.info(reason)
        show_on_sensor_page(context, "; ".join([f"launched {r.job_name} for {r.partition_key}" for r in requests] + reasons))
        new = sorted({key for _, key in pairs} & set(registration.new))
        return SensorResult(
            run_requests=requests, dynamic_partitions_requests=[EXPERIMENTS.build_add_request(new)] if new else None
        )

    return advance_experiments

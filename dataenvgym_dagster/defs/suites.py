"""Suites: run every partition of a suite (terminal or daemon), and the leaderboard asset.

A suite (``suites:`` in the catalogue) expands to experiments whose partitions are ordinary
domain × experiment partitions. Two ways to run one:

* ``dataenvgym suite run NAME`` (:func:`run_suite`): in this process, partition after partition,
  skipping those already finished, with a progress line after each; a failed partition is named
  with its error and the others still run.
* the ``suite_<name>`` sensor (stopped by default; start it on the UI's Automation page): the
  daemon advances the suite's partitions (the foundations, then the iterations left in one run), at most ``max_in_flight`` runs at a
  time, and each tick says how many partitions are done, running and failed. Runs carry the tag
  ``dataenvgym/suite``, so the UI's run list filters one suite's runs.
"""

# No `from __future__ import annotations`: Dagster reads the asset's context annotation at definition time.
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    sensor,
)

from dataenvgym_dagster import leaderboard
from dataenvgym_dagster.defs.automation import _runs, next_step
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, run_experiment
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import EXPERIMENTS, registered_experiments
from dataenvgym_dagster.defs.resources import TeachingHome
from dataenvgym_dagster.defs.turns import PENDING_STATUSES
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.experiments.config import CatalogError
from dataenvgym_dagster.machinery.storage import replace_file

SUITE_TAG = "dataenvgym/suite"
REPORTS = "reports"


@dataclass
class SuiteProgress:
    """Where a suite stands: partitions (``domain|experiment``) done, running, failed and still to run."""

    total: int
    done: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # partition -> why
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        left = self.total - len(self.done) - len(self.running) - len(self.failed)
        return (
            f"{len(self.done)}/{self.total} done, {len(self.running)} running, {len(self.failed)} failed, "
            f"{left} to run; {elapsed // 3600}h{elapsed // 60 % 60:02d}m{elapsed % 60:02d}s"
        )


def finished_partitions(instance: DagsterInstance, catalog: ExperimentCatalog) -> set[str]:
    """``domain|experiment`` partitions whose last iteration's test evaluation is materialised."""
    return set(instance.get_materialized_partitions(iteration_key(catalog.iterations, "test_evaluation")))


def _errors(result):
    """Every error (with its causes) of the failed steps of an in-process run."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                yield error
                error = error.cause


def interrupted(result) -> bool:
    """Whether a run failed because this process was interrupted (Ctrl-C, SIGTERM), not because of a step."""
    return any(error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt") for error in _errors(result))


def failure_reason(result) -> str:
    """The first failed step of an in-process run and the first line of the error that caused it."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:  # Dagster wraps the asset's own error
                error = error.cause
            message = (error.message if error else "").strip().splitlines()
            return f"{event.step_key}: {message[0] if message else 'failed'}"
    return "the run failed before any step (see the Dagster UI)"


def run_suite(
    defs: Definitions,
    instance: DagsterInstance,
    catalog: ExperimentCatalog,
    name: str,
    run_config: dict | None = None,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
    only: Callable[[str], bool] = lambda partition: True,
) -> SuiteProgress:
    """Run every partition of suite ``name`` that is not finished yet, in process, in the suite's order.

    A partition that fails is recorded with its reason and the next one runs; finished partitions
    (from an earlier, interrupted run of the suite) are skipped. ``only`` picks the partitions
    (``domain|experiment``) to consider, for running part of a suite."""
    pairs = [(domain, key) for domain, key in catalog.suite_partitions(name) if only(f"{domain}|{key}")]
    progress = SuiteProgress(total=len(pairs))
    finished = finished_partitions(instance, catalog)
    progress.done = [f"{domain}|{key}" for domain, key in pairs if f"{domain}|{key}" in finished]
    say(f"suite {name}: {len(pairs)} partitions; {len(progress.done)} already finished")
    broken: dict[str, str] = {}  # domain -> why its foundations failed: its other partitions are not tried again
    for domain, key in pairs:
        partition = f"{domain}|{key}"
        if partition in progress.done:
            continue
        if domain in broken:
            progress.failed[partition] = broken[domain]
            continue
        progress.running = [partition]
        say(f"▶ {partition}  [{progress.line()}]")
        began = time.monotonic()
        settings = catalog.experiment(key)
        results = run_experiment(defs, instance, domain, key, run_config, seed=settings.seed, say=lambda _line: None)
        progress.running = []
        failed = [result for result in results if not result.success]
        if failed and interrupted(failed[0]):  # the person stopped the suite: stop, do not start the next one
            progress.failed[partition] = "interrupted"
            say(f"■ interrupted during {partition}; run the suite again to resume (finished partitions are kept)")
            break
        if failed:
            progress.failed[partition] = failure_reason(failed[0])
            if failed[0].job_def.name == FOUNDATIONS_JOB:
                broken[domain] = f"the foundations of {domain} failed: {progress.failed[partition]}"
            say(f"✗ {partition} failed after {time.monotonic() - began:.0f} s: {progress.failed[partition]}")
        else:
            progress.done.append(partition)
            say(f"✓ {partition} in {time.monotonic() - began:.0f} s  [{progress.line()}]")
    say(f"suite {name}: {progress.line()}")
    for partition, why in progress.failed.items():
        say(f"  failed: {partition}: {why}")
    return progress


def suite_sensor_name(suite: str) -> str:
    return f"suite_{suite}"


def suite_sensors(
    loaded: ExperimentCatalog, groups: dict[str, list[AssetKey]], jobs: list, experiments_file: Path | None = None,
    max_in_flight: int = 1, interval_seconds: int = 15,
) -> list:
    """One sensor per suite of ``loaded``, stopped until someone starts it in the UI."""
    return [_suite_sensor(name, loaded, groups, jobs, experiments_file, max_in_flight, interval_seconds) for name in loaded.suites]


def _suite_sensor(name, loaded, groups, jobs, experiments_file, max_in_flight, interval_seconds):
    @sensor(
        name=suite_sensor_name(name),
        jobs=jobs,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Runs suite {name!r} of the catalogue: starts its partitions {max_in_flight} run at a time, "
        "one stage per run; a failed partition stops only itself. Each tick says how many are done, running and failed.",
    )
    def run_suite_partitions(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        try:
            catalog = load_catalog(experiments_file)
            pairs = catalog.suite_partitions(name)
        except (CatalogError, KeyError) as error:
            return SkipReason(f"suite {name} not run: {error}")
        finished = finished_partitions(context.instance, catalog)
        in_progress = PENDING_STATUSES  # queued ones too: the queue will start them
        progress = SuiteProgress(total=len(pairs))
        candidates = []
        for domain, key in pairs:
            partition = f"{domain}|{key}"
            if partition in finished:
                progress.done.append(partition)
            elif _runs(context.instance, partition, statuses=in_progress, limit=1) or (
                (latest := _runs(context.instance, partition, limit=1)) and awaited(latest[0])
            ):
                progress.running.append(partition)  # a run about to be queued or retried counts as running
            elif (latest := _runs(context.instance, partition, limit=1)) and latest[0].status == DagsterRunStatus.FAILURE:
                progress.failed[partition] = f"run {latest[0].run_id} failed"
            else:
                candidates.append((domain, key))
        in_flight = len(context.instance.get_runs(RunsFilter(tags={SUITE_TAG: name}, statuses=in_progress)))
        requests: list[RunRequest] = []
        for domain, key in candidates:
            if in_flight + len(requests) >= max_in_flight:
                break
            step = next_step(context.instance, groups, catalog, domain, key)  # a SkipReason while its foundations run
            if isinstance(step, SkipReason) or any(r.job_name == FOUNDATIONS_JOB and r.partition_key == domain for r in requests):
                continue
            requests.append(RunRequest(run_key=step.run_key, job_name=step.job_name, partition_key=step.partition_key,
                                       asset_selection=step.asset_selection, tags={**step.tags, SUITE_TAG: name}))
        summary = f"suite {name}: {progress.line().rsplit(';', 1)[0]}; {in_flight} run(s) of the suite in flight" + "".join(
            f"; failed {partition} ({why})" for partition, why in progress.failed.items()
        )
        if not requests:
            return SkipReason(summary)
        context.log.info(summary)
        new = sorted({key for _, key in pairs} - registered_experiments(context.instance))
        return SensorResult(run_requests=requests, dynamic_partitions_requests=[EXPERIMENTS.build_add_request(new)] if new else None)

    return run_suite_partitions


@asset(group_name=REPORTS, description="The leaderboard of every finished run in the warehouse (see docs/leaderboard.md); "
       "its metadata shows the table, and a self-contained HTML page is written to <home>/reports/leaderboard.html. "
       "Materialise it after a suite.")
def leaderboard_report(context: AssetExecutionContext, teaching: TeachingHome) -> MaterializeResult:
    board = leaderboard.load(teaching.warehouse())
    page = teaching.path / "reports" / "leaderboard.html"
    replace_file(page, leaderboard.html_page(board).encode())  # a reader never sees half a page
    context.log.info(f"leaderboard: {len(board.ranked)} ranked rows, {len(board.apart)} listed apart; {page}")
    return MaterializeResult(metadata={
        "leaderboard": MetadataValue.md(leaderboard.markdown(board)),
        "ranked_rows": len(board.ranked), "rows_listed_apart": len(board.apart),
        "html": MetadataValue.path(str(page)),
    })



"""The UI's answer to "is this out of date, and what is really missing?": an ``up_to_date`` check per asset.

Dagster 1.13 computes no staleness for partitioned assets in the graph or the catalogue, and counts
every domain × experiment pair of the loop partitions, so a pair the catalogue does not run shows
as "missing" (see ``partitions.py`` for why the partitions are a cross product). Each asset therefore
carries an ``up_to_date`` check that says what ``dataenvgym status`` says (the same code,
``status.py``), over the partitions the catalogue runs only: how many of them are materialised, which
were never materialised, and which are older than one of their inputs, naming that input. A
partition out of date fails the check with a warning, which the graph node and the asset page show.

The ``report_up_to_date`` sensor evaluates the checks outside any run, after every new
materialisation (or newly registered experiment), so re-running iteration 0 marks iteration 1's
assets at once; "Execute" on a check re-evaluates it in a run of its own. No job runs these
checks; a run that materialises selected assets (Dagster adds their checks to it) leaves them to the
sensor.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    RepositoryDefinition,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    multi_asset_check,
    sensor,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from dataenvgym_dagster.defs.partitions import registered_experiments
from dataenvgym_dagster.defs.registration import show_on_sensor_page
from dataenvgym_dagster.defs.jobs import TEACHING_LOOP_JOB
from dataenvgym_dagster.defs.status import experiment_status
from dataenvgym_dagster.experiments import ExperimentCatalog

CHECK = "up_to_date"
SENSOR = "report_up_to_date"
DESCRIPTION = (
    "Over the partitions the catalogue runs (not every domain × experiment pair Dagster counts): how many are "
    "materialised, which never were, and which are older than one of their inputs (a warning, naming the input). "
    "Evaluated by the report_up_to_date sensor after each materialisation; the same answer as `dataenvgym status`."
)


@dataclass(frozen=True)
class UpToDate:
    """One asset's ``up_to_date`` result: over its valid partitions, which are materialised, missing or out of date."""

    asset: AssetKey
    valid: list[str]
    missing: list[str]
    out_of_date: dict[str, str]  # partition -> which input is newer (or itself out of date)
    pairs_counted: int | None  # domain × experiment pairs Dagster counts as partitions (loop assets only)

    @property
    def passed(self) -> bool:
        return not self.out_of_date

    @property
    def description(self) -> str:
        materialised = f"{len(self.valid) - len(self.missing)} of {len(self.valid)} valid partitions materialised"
        if self.passed:
            return f"{materialised}, none older than its inputs"
        first, cause = next(iter(self.out_of_date.items()))
        more = f" (and {len(self.out_of_date) - 1} more)" if len(self.out_of_date) > 1 else ""
        return f"out of date in {first}: {cause}{more}; {materialised}"

    @property
    def metadata(self) -> dict[str, str]:
        metadata = {"materialised": f"{len(self.valid) - len(self.missing)} of {len(self.valid)} valid partitions"}
        if self.out_of_date:
            metadata["out of date"] = "; ".join(f"{partition}: {cause}" for partition, cause in self.out_of_date.items())
        if self.missing:
            metadata["never materialised"] = ", ".join(self.missing)
        if self.pairs_counted is not None:
            metadata["not experiments"] = (
                f"{self.pairs_counted - len(self.valid)} of the {self.pairs_counted} domain × experiment partitions "
                "Dagster counts pair a domain with an experiment that does not run on it; they stay missing"
            )
        return metadata

    def evaluation(self) -> AssetCheckEvaluation:
        return AssetCheckEvaluation(
            asset_key=self.asset, check_name=CHECK, passed=self.passed, severity=AssetCheckSeverity.WARN,
            description=self.description, metadata=self.metadata,
        )

    def result(self) -> AssetCheckResult:
        return AssetCheckResult(
            asset_key=self.asset, check_name=CHECK, passed=self.passed, severity=AssetCheckSeverity.WARN,
            description=self.description, metadata=self.metadata,
        )


def up_to_date(repository: RepositoryDefinition, instance: DagsterInstance, catalog: ExperimentCatalog) -> list[UpToDate]:
    """The ``up_to_date`` result of every asset with the check, from ``experiment_status``."""
    statuses = experiment_status(repository, instance, catalog)
    valid: dict[AssetKey, list[str]] = {}
    missing: dict[AssetKey, list[str]] = {}
    out_of_date: dict[AssetKey, dict[str, str]] = {}
    for status in statuses:
        for key in repository.get_job(status.job).asset_layer.executable_asset_keys:
            valid.setdefault(key, []).append(status.partition)
            if key in status.missing:
                missing.setdefault(key, []).append(status.partition)
            elif key in status.stale:
                out_of_date.setdefault(key, {})[status.partition] = status.causes[key]
    pairs_counted = len(catalog.domains) * len(registered_experiments(instance))
    loop = repository.get_job(TEACHING_LOOP_JOB).asset_layer.executable_asset_keys
    checked = {check.asset_key for check in repository.asset_graph.asset_check_keys if check.name == CHECK}
    return [
        UpToDate(key, valid[key], missing.get(key, []), out_of_date.get(key, {}), pairs_counted if key in loop else None)
        for key in repository.asset_graph.toposorted_asset_keys  # graph order: iteration 0 before 1
        if key in valid and key in checked
    ]


def check_keys(assets: Iterable[AssetKey]) -> list[AssetCheckKey]:
    return [AssetCheckKey(key, CHECK) for key in assets]


def up_to_date_checks(catalog: ExperimentCatalog, assets: Sequence[AssetKey]):
    """The checks, one per asset; executing them evaluates them now, in a run of their own."""

    @multi_asset_check(
        name="evaluate_up_to_date",
        specs=[AssetCheckSpec(CHECK, asset=key, description=DESCRIPTION) for key in assets],
        can_subset=True,
        description="Whether the partitions the catalogue runs are materialised and newer than their inputs.",
    )
    def evaluate_up_to_date(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        if context.run.asset_selection:
            # Dagster adds the checks of selected assets to a run materialising them (no job includes these);
            # evaluated here, before those assets exist, they would be wrong at once. The sensor evaluates them after.
            context.log.info("up_to_date is evaluated by the report_up_to_date sensor once this run's assets exist")
            return
        selected = context.selected_asset_check_keys
        for result in up_to_date(context.repository_def, context.instance, catalog):
            if AssetCheckKey(result.asset, CHECK) in selected:
                yield result.result()

    return evaluate_up_to_date


def _fingerprint(instance: DagsterInstance, assets: Sequence[AssetKey]) -> str:
    """Changes when any of ``assets`` is materialised or an experiment is registered: when results may change."""
    latest = [
        record.asset_entry.last_materialization_record.storage_id
        for record in instance.get_asset_records(list(assets))
        if record.asset_entry.last_materialization_record is not None
    ]
    return f"materialisation {max(latest, default=0)}, {len(registered_experiments(instance))} experiments"


def report_up_to_date_sensor(catalog: ExperimentCatalog, assets: Sequence[AssetKey], interval_seconds: int = 5):
    """The sensor: evaluates every ``up_to_date`` check, outside any run, whenever an asset was materialised."""

    @sensor(
        name=SENSOR, minimum_interval_seconds=interval_seconds, default_status=DefaultSensorStatus.RUNNING,
        description="After each materialisation, evaluates every asset's up_to_date check over the partitions the "
        "catalogue runs: a warning names each partition older than one of its inputs. The Cursor on this page says "
        "what the latest evaluation found.",
    )
    def report_up_to_date(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        # An evaluation reads every valid partition (about 15 ms per asset and partition: 13 s for a suite's
        # 900), so it waits for the runs in progress to end rather than compete with them for the cores.
        if context.instance.get_runs(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=1):
            return SkipReason("runs are in progress; up_to_date is evaluated once they end")
        fingerprint = _fingerprint(context.instance, assets)
        # The cursor starts with what the last evaluation saw; nothing new, nothing to evaluate.
        if context.cursor and context.cursor.split(": ")[0] == fingerprint:
            return SkipReason(f"nothing materialised since the last evaluation ({fingerprint})")
        results = up_to_date(context.repository_def, context.instance, catalog)
        stale = [result.asset.to_user_string() for result in results if not result.passed]
        show_on_sensor_page(context, f"{fingerprint}: " + (f"out of date: {', '.join(stale)}" if stale else "every asset up to date"))
        return SensorResult(asset_events=[result.evaluation() for result in results])

    return report_up_to_date


"""A sensor that registers the catalogue's experiments as partitions, without a restart.

Each tick re-reads the catalogue file (``$DATAENVGYM_EXPERIMENTS`` or the shipped one) and adds
every experiment (each seed of a multi-seed one) that the instance does not know yet to the
dynamic experiment dimension of the loop partitions. Entries that need a different asset graph
than the loaded one (more iterations, a domain loaded without it) are refused, with the reason
in the tick (see ``experiments/registration.py``). A tick that registered something says what;
a catalogue it cannot read fails the tick with the file, line and field (the sensor keeps running
and reads the file again at the next tick).
"""

from __future__ import annotations

from pathlib import Path

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from dataenvgym_dagster.defs.partitions import EXPERIMENTS, registered_experiments
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.experiments.registration import plan_registration

SENSOR = "register_experiments"
CURSOR_LIMIT = 1000  # characters of the latest tick's outcome kept as the cursor


def show_on_sensor_page(context: SensorEvaluationContext, outcome: str) -> None:
    """The latest tick's outcome as the sensor's cursor, which the sensor's page shows as text (Dagster
    shows a skip reason only in a tooltip of the tick list). Our sensors keep no other cursor, except that
    report_up_to_date's starts with what it last evaluated (``defs/freshness.py``)."""
    context.update_cursor(outcome if len(outcome) <= CURSOR_LIMIT else outcome[: CURSOR_LIMIT - 1] + "…")


def skip(context: SensorEvaluationContext, reason: str) -> SkipReason:
    """Skip the tick, with the reason on the sensor's page as well as in the tick."""
    show_on_sensor_page(context, reason)
    return SkipReason(reason)


def register_experiments_sensor(loaded: ExperimentCatalog, experiments_file: Path | None, interval_seconds: int = 15):
    """The sensor; ``loaded`` is the catalogue the definitions were built from, ``experiments_file`` the one runs read."""

    @sensor(
        name=SENSOR, minimum_interval_seconds=interval_seconds, default_status=DefaultSensorStatus.RUNNING,
        description="Re-reads the experiment catalogue and adds new experiments as partitions (no restart needed); "
        "says in its ticks what it registered and which entries need a reload of the code location, and why; "
        "a catalogue it cannot read fails the tick. The latest tick's outcome shows as the Cursor on this page.",
    )
    def register_experiments(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        # A catalogue it cannot read fails the tick (red in the UI, with the file, line and field), rather
        # than passing for a quiet grey skip; the next tick reads the file again.
        current = load_catalog(experiments_file)
        registered = registered_experiments(context.instance)
        plan = plan_registration(loaded, current, registered)
        for key, why in plan.refused.items():
            context.log.warning(f"experiment {key} is not registered: {why}")
        if not plan.new:
            return skip(context, plan.describe(len(registered)))
        context.log.info(plan.describe(len(registered)))
        # A tick without runs shows as skipped; its reason then says what it registered.
        show_on_sensor_page(context, plan.describe(len(registered)))
        return SensorResult(
            dynamic_partitions_requests=[EXPERIMENTS.build_add_request(list(plan.new))],
            skip_reason=SkipReason(plan.describe(len(registered))),
        )

    return register_experiments

"""The code location: assembles assets, checks, resources, jobs, sensors (registration, automation, up to date) and
schedules. Nothing else lives here."""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions

from dataenvgym_dagster.defs import deployment, freshness, terminal
from dataenvgym_dagster.defs.automation import advance_experiments_sensor
from dataenvgym_dagster.defs.descriptions import with_descriptions
from dataenvgym_dagster.defs.jobs import TEACHING_LOOP_JOB, jobs
from dataenvgym_dagster.defs.loop.foundations import foundation_assets
from dataenvgym_dagster.defs.loop.iterations import iteration_assets
from dataenvgym_dagster.defs.registration import register_experiments_sensor
from dataenvgym_dagster.defs.resources import TeachingHome, WarehouseIOManager, default_home, default_storage
from dataenvgym_dagster.defs.schedules import experiment_schedules
from dataenvgym_dagster.defs.suites import leaderboard_report, suite_sensors
from dataenvgym_dagster.defs.teacher import teacher_resource
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog
from dataenvgym_dagster.machinery.heap import freeze_long_lived


def build_definitions(
    catalog: ExperimentCatalog | None = None,
    home: str | None = None,
    experiments_file: Path | None = None,
    storage: str | None = None,
) -> Definitions:
    """Definitions for a catalogue, a home folder and where data is stored.

    ``experiments_file`` is the catalogue runs read their settings from (default:
    ``$DATAENVGYM_EXPERIMENTS`` or the shipped one); ``catalog``, if given, shapes the asset graph
    and must come from the same file. ``storage`` holds the warehouse, artefacts and checkpoints
    (default: ``$DATAENVGYM_STORAGE``, else the home): a folder or an ``s3://`` / ``gs://`` URL.
    """
    catalog = catalog or load_catalog(experiments_file)
    home = home or str(default_home())
    storage = storage or default_storage(home)
    storage = None if storage == home else storage  # the default: everything under the home, as before
    assets = foundation_assets(catalog)
    for iteration in range(catalog.iterations + 1):
        assets += iteration_assets(iteration, catalog)
    assets = with_descriptions(assets, catalog)
    groups: dict[str, list] = {}
    for definition in assets:
        for key in definition.keys:
            groups.setdefault(definition.group_names_by_key[key], []).append(key)
    keys = [key for definition in assets for key in definition.keys]
    job_defs = jobs(catalog, evaluated_apart=freshness.check_keys(keys))  # the sensor evaluates them, not the runs
    teaching_loop = next(job for job in job_defs if job.name == TEACHING_LOOP_JOB)
    definitions = Definitions(
        assets=[*assets, leaderboard_report],
        asset_checks=[freshness.up_to_date_checks(catalog, keys)],
        jobs=job_defs,
        # Both re-read the catalogue file at each tick: new experiments need no restart.
        sensors=[
            register_experiments_sensor(catalog, experiments_file),
            advance_experiments_sensor(catalog, groups, job_defs, experiments_file),
            freshness.report_up_to_date_sensor(catalog, keys),  # marks out-of-date partitions in the UI
            *suite_sensors(catalog, groups, job_defs, experiments_file),  # stopped until started in the UI
        ],
        schedules=experiment_schedules(catalog, teaching_loop),
        resources={
            "teaching": TeachingHome(
                home=home, storage=storage, experiments_file=str(experiments_file) if experiments_file else None
            ),
            "teacher": teacher_resource(home, storage=storage),  # DATAENVGYM_TEACHER_* variables; see defs/teacher.py
            "io_manager": WarehouseIOManager(home=home, storage=storage),
        },
        # The default console logger, but failures in one line on the terminal (the run's log keeps the trace).
        loggers={"console": terminal.console},
        # In process (`local`), on Celery workers (`cluster`) or a pod per step (`k8s`): $DATAENVGYM_PROFILE.
        executor=deployment.executor(),
    )
    freeze_long_lived("code location built")  # fewer objects for each full garbage collection: machinery/heap.py
    return definitions


defs = build_definitions()

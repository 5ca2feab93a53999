"""Jobs: the per-domain foundations and the whole teaching loop of an experiment."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from dataenvgym_dagster.defs.loop.foundations import GROUP as FOUNDATIONS
from dataenvgym_dagster.experiments import ExperimentCatalog

FOUNDATIONS_JOB = "foundations_job"
TEACHING_LOOP_JOB = "teaching_loop_job"


def jobs(catalog: ExperimentCatalog) -> list:
    iterations = [f"iteration_{t}" for t in range(catalog.iterations + 1)]
    return [
        define_asset_job(FOUNDATIONS_JOB, AssetSelection.groups(FOUNDATIONS), description="Benchmark, corpus and base student of a domain."),
        define_asset_job(TEACHING_LOOP_JOB, AssetSelection.groups(*iterations), description="Every iteration of one domain × experiment, in order."),
    ]

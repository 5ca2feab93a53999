"""Jobs: the per-domain foundations and the whole teaching loop of an experiment."""

from __future__ import annotations

from typing import Any

from dagster import AssetSelection, DagsterInstance, Definitions, ExecuteInProcessResult, define_asset_job

from dataenvgym_dagster.defs.loop.foundations import GROUP as FOUNDATIONS
from dataenvgym_dagster.defs.partitions import loop_partition_key
from dataenvgym_dagster.experiments import ExperimentCatalog

FOUNDATIONS_JOB = "foundations_job"
TEACHING_LOOP_JOB = "teaching_loop_job"


def jobs(catalog: ExperimentCatalog) -> list:
    iterations = [f"iteration_{t}" for t in range(catalog.iterations + 1)]
    return [
        define_asset_job(FOUNDATIONS_JOB, AssetSelection.groups(FOUNDATIONS), description="Benchmark, corpus and base student of a domain."),
        define_asset_job(TEACHING_LOOP_JOB, AssetSelection.groups(*iterations), description="Every iteration of one domain × experiment, in order."),
    ]


def run_experiment(
    defs: Definitions, instance: DagsterInstance, domain: str, experiment: str, run_config: dict[str, Any] | None = None
) -> list[ExecuteInProcessResult]:
    """Materialise the domain's foundations, then every iteration of ``domain|experiment``, in process.

    Stops after the first run that fails; the results say which.
    """
    results = []
    for job, partition in ((FOUNDATIONS_JOB, domain), (TEACHING_LOOP_JOB, loop_partition_key(domain, experiment))):
        print(f"== {job} for {partition}", flush=True)
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=partition, instance=instance, run_config=run_config, raise_on_error=False
        )
        results.append(result)
        if not result.success:
            break
    return results

"""What is actually missing or out of date, for the partitions the catalogue runs.

The UI counts every domain × experiment pair of the loop partitions (a pair the catalogue does not
run shows as "missing"), and marks no partitioned asset stale (Dagster 1.13 computes staleness for
partitioned assets only per partition). ``dataenvgym status`` answers both for the valid pairs: per
``domain|experiment``, the assets never materialised, and those materialised before one of their
inputs (what the next ``dataenvgym run`` would redo), with the input that is newer. The UI shows the
same answer as the ``up_to_date`` check of each asset (``defs/freshness.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, DagsterInstance, Definitions, RepositoryDefinition

from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, NEVER_MATERIALISED, TEACHING_LOOP_JOB, plan_job
from dataenvgym_dagster.defs.partitions import loop_partition_key, registered_experiments
from dataenvgym_dagster.experiments import ExperimentCatalog


@dataclass(frozen=True)
class PartitionStatus:
    job: str  # foundations_job or teaching_loop_job: which assets the partition has
    partition: str
    missing: list[AssetKey]
    stale: list[AssetKey]  # materialised, but before one of their inputs (or downstream of such)
    causes: dict[AssetKey, str]  # of each stale asset: which input is newer, or is itself redone

    def describe(self) -> str:
        if not self.missing and not self.stale:
            return f"{self.partition}: up to date"
        parts = []
        if self.stale:
            parts.append(f"{len(self.stale)} out of date: {', '.join(k.to_user_string() for k in self.stale)}")
        if self.missing:
            parts.append(f"{len(self.missing)} never materialised: {', '.join(k.to_user_string() for k in self.missing)}")
        return f"{self.partition}: " + "; ".join(parts)

    def why(self) -> list[str]:
        """One line per out-of-date asset: which input is newer, or is itself out of date."""
        return [f"  {key.to_user_string()}: {self.causes[key]}" for key in self.stale]


def partition_status(defs: Definitions | RepositoryDefinition, instance: DagsterInstance, job: str, partition) -> PartitionStatus:
    plan = plan_job(defs, instance, job, partition)
    missing = [key for key in plan.stale if plan.causes[key] == NEVER_MATERIALISED]
    stale = [key for key in plan.stale if key not in missing]
    return PartitionStatus(job, str(partition), missing, stale, {key: plan.causes[key] for key in stale})


def experiment_status(
    defs: Definitions | RepositoryDefinition, instance: DagsterInstance, catalog: ExperimentCatalog
) -> list[PartitionStatus]:
    """Each domain's foundations, then each registered experiment on each domain it names (valid pairs only)."""
    statuses = [partition_status(defs, instance, FOUNDATIONS_JOB, domain) for domain in catalog.domains]
    for domain, experiment in valid_pairs(instance, catalog):
        statuses.append(partition_status(defs, instance, TEACHING_LOOP_JOB, loop_partition_key(domain, experiment)))
    return statuses


def valid_pairs(instance: DagsterInstance, catalog: ExperimentCatalog) -> list[tuple[str, str]]:
    """The (domain, experiment) pairs the catalogue runs among the partitions the instance knows, by experiment."""
    registered = registered_experiments(instance)
    return [
        (domain, experiment)
        for experiment in sorted(key for key in catalog.runs if key in registered)
        for domain in catalog.domains_of(experiment)
        if domain in catalog.domains
    ]

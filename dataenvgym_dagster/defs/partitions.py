"""Partitions: shared artefacts per domain, loop artefacts per domain × experiment."""

from __future__ import annotations

import warnings

from dagster import (
    BetaWarning,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
)

from dataenvgym_dagster.experiments import ExperimentCatalog

DOMAIN = "domain"
EXPERIMENT = "experiment"

# Loop assets read domain-partitioned assets (benchmark, base student) of their own domain.
# The mapping is marked beta, which printed a BetaWarning on every load of the definitions; the
# project depends on its documented behaviour only (tested in test_definitions.py).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    SAME_DOMAIN = MultiToSingleDimensionPartitionMapping(partition_dimension_name=DOMAIN)


def domain_partitions(catalog: ExperimentCatalog) -> StaticPartitionsDefinition:
    return StaticPartitionsDefinition(list(catalog.domains))


def loop_partitions(catalog: ExperimentCatalog) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {DOMAIN: domain_partitions(catalog), EXPERIMENT: StaticPartitionsDefinition(list(catalog.runs))}
    )


def loop_partition_key(domain: str, experiment: str) -> MultiPartitionKey:
    return MultiPartitionKey({DOMAIN: domain, EXPERIMENT: experiment})


def partition_segments(partition_key: object) -> list[str]:
    """``[domain]`` or ``[domain, experiment]`` for a partition key, for storage paths."""
    if isinstance(partition_key, MultiPartitionKey):
        dimensions = partition_key.keys_by_dimension
        return [dimensions[DOMAIN], dimensions[EXPERIMENT]]
    return [str(partition_key)]

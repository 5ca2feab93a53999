"""Partitions: shared artefacts per domain, loop artefacts per domain × experiment.

Domains are a static dimension: each has its own foundations (benchmark, base student), fixed
when the code location loads. Experiments are a *dynamic* dimension: the ``register_experiments``
sensor adds every catalogue entry (and ``dataenvgym run`` adds its own), so an experiment added
to the catalogue runs without restarting the code location.

Why a 2-D partitions definition with a dynamic experiment dimension, and not one dynamic
definition whose keys are only the valid ``domain|experiment`` pairs: a loop partition reads its
domain's foundations (benchmark, base student, pretraining corpus), and that dependency has to be
declared with a built-in partition mapping, because the UI, the backfill daemon and staleness
run in host processes that load no user code (custom mappings are unsupported there).
``MultiToSingleDimensionPartitionMapping`` is the only built-in one that maps a loop partition to
exactly its domain's foundation partition; from a single dynamic ``arithmetic|x`` key, the only
built-in choice would be ``AllPartitionMapping`` (every loop partition depends on every domain),
which would mark every experiment stale when any domain's benchmark changes. The cost: Dagster
shows the cross product, so ``vqa|x`` exists in the partition picker although ``x`` names only
``domains: [arithmetic]``. Such a pair is never launched by the sensors, schedules or the CLI, and
a run of it launched from the UI fails at its first step, saying which pairs to pick
(``ExperimentCatalog.check_pair``). The picker lists the two dimensions separately, each
searchable, which stays usable with many experiments. Keys keep the ``arithmetic|skill_list``
form and the ``domain``/``experiment`` path segments of the storage layout.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from dagster import (
    BetaWarning,
    DagsterInstance,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
)

from dataenvgym_dagster.experiments import ExperimentCatalog

DOMAIN = "domain"
EXPERIMENT = "experiment"

# The instance-wide name of the experiment dimension's keys (what the UI's "add partition" adds to).
EXPERIMENTS = DynamicPartitionsDefinition(name="experiments")

# Loop assets read domain-partitioned assets (benchmark, base student) of their own domain.
# The mapping is marked beta, which printed a BetaWarning on every load of the definitions; the
# project depends on its documented behaviour only (tested in test_definitions.py).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    SAME_DOMAIN = MultiToSingleDimensionPartitionMapping(partition_dimension_name=DOMAIN)


def domain_partitions(catalog: ExperimentCatalog) -> StaticPartitionsDefinition:
    return StaticPartitionsDefinition(list(catalog.domains))


def loop_partitions(catalog: ExperimentCatalog) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({DOMAIN: domain_partitions(catalog), EXPERIMENT: EXPERIMENTS})


def loop_partition_key(domain: str, experiment: str) -> MultiPartitionKey:
    return MultiPartitionKey({DOMAIN: domain, EXPERIMENT: experiment})


def registered_experiments(instance: DagsterInstance) -> set[str]:
    """The experiment keys this instance knows as partitions."""
    return set(instance.get_dynamic_partitions(EXPERIMENTS.name))


def register_experiments(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add experiment partition keys to the instance (idempotent); the keys that were new."""
    new = sorted(set(keys) - registered_experiments(instance))
    if new:
        instance.add_dynamic_partitions(EXPERIMENTS.name, new)
    return new


def partition_segments(partition_key: object) -> list[str]:
    """``[domain]`` or ``[domain, experiment]`` for a partition key, for storage paths."""
    if isinstance(partition_key, MultiPartitionKey):
        dimensions = partition_key.keys_by_dimension
        return [dimensions[DOMAIN], dimensions[EXPERIMENT]]
    return [str(partition_key)]

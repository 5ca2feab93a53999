"""What Dagster alone costs to run an experiment: the same asset graph with steps that do nothing.

Every asset (and multi-asset) of the project's definitions is replaced by one with the same keys,
step name, inputs, partition mappings, partitions, group and asset checks, whose step returns a constant through an in-memory
IO manager. ``run_experiment`` then runs the foundations and the loop as `dataenvgym run` does
(the experiment registered, the turn taken, the stale assets planned, two in-process runs) on a
fresh ephemeral instance. What remains is Dagster's bookkeeping per run, step, input and output:
the floor under ``benchmarks/stage_timings.py``'s "outside training and evaluation".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetIn,
    AssetSelection,
    AssetsDefinition,
    AssetSpec,
    DagsterInstance,
    Definitions,
    InputContext,
    IOManager,
    Output,
    OutputContext,
    define_asset_job,
    multi_asset,
)

from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB, run_experiment
from dataenvgym_dagster.defs.loop.foundations import GROUP as FOUNDATIONS


class _Memory(IOManager):
    """Keeps each output in a dict by asset and partition, for the steps downstream."""

    def __init__(self) -> None:
        self.values: dict[tuple, Any] = {}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.values[context.asset_key, context.partition_key if context.has_partition_key else None] = obj

    def load_input(self, context: InputContext) -> Any:
        return self.values[context.asset_key, context.asset_partition_key if context.has_asset_partitions else None]


def _empty_like(original: AssetsDefinition) -> AssetsDefinition:
    """An asset (or a multi-asset: one step for several assets) with ``original``'s shape and an empty step."""
    upstream = list(original.keys_by_input_name.values())
    deps = [AssetDep(key, partition_mapping=original.get_partition_mapping_for_dep(key)) for key in upstream]
    specs = [
        AssetSpec(key, deps=deps, partitions_def=original.partitions_def, group_name=original.group_names_by_key[key]).with_io_manager_key("io_manager")
        for key in original.keys
    ]
    checks = [AssetCheckSpec(spec.name, asset=spec.asset_key, blocking=spec.blocking) for spec in original.check_specs]

    @multi_asset(
        name=original.op.name, specs=specs, ins={f"input_{index}": AssetIn(key) for index, key in enumerate(upstream)},
        check_specs=checks or None,
    )
    def empty(**inputs: Any) -> Iterator[Output | AssetCheckResult]:
        for key in original.keys:
            yield Output(1, output_name=key.to_python_identifier())
        for check in checks:
            yield AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)

    return empty


def empty_step_seconds(defs: Definitions, domain: str, experiment: str) -> tuple[float, int]:
    """Wall time (s) of ``run_experiment`` over ``defs``' graph with empty steps, and how many steps ran."""
    assets = [_empty_like(definition) for definition in defs.assets if isinstance(definition, AssetsDefinition) and definition.is_executable]
    groups = {definition.group_names_by_key[key] for definition in assets for key in definition.keys}
    replica = Definitions(
        assets=assets,
        jobs=[
            define_asset_job(FOUNDATIONS_JOB, AssetSelection.groups(FOUNDATIONS)),
            define_asset_job(TEACHING_LOOP_JOB, AssetSelection.groups(*sorted(group for group in groups if group.startswith("iteration_")))),
        ],
        resources={"io_manager": _Memory()},
    )
    instance = DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started = time.perf_counter()
    results = run_experiment(replica, instance, domain, experiment, quiet, say=lambda line: None)
    seconds = time.perf_counter() - started
    if not all(result.success for result in results):
        raise SystemExit("the empty-step replica of the graph failed to run")
    return seconds, sum(1 for result in results for event in result.all_events if event.is_step_success)

"""What the UI says about each asset: which iteration it belongs to and what a partition is.

Keys name their iteration (``it1_val_eval``, see asset_names.py) because graph nodes and the stubs
linking to other groups show only a key's last part; the materialise dialog lists partition dimensions without saying what they mean, so every
description starts with its iteration and ends with how to pick a partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetsDefinition, AssetSpec, map_asset_specs

from dataenvgym_dagster.defs.loop.foundations import GROUP as FOUNDATIONS
from dataenvgym_dagster.experiments import ExperimentCatalog


def describe(spec: AssetSpec, catalog: ExperimentCatalog) -> AssetSpec:
    domain = next(iter(catalog.domains))
    text = (spec.description or "").strip()
    if not text:
        raise ValueError(f"asset {spec.key.to_user_string()} has no description; give its function a docstring")
    if spec.group_name == FOUNDATIONS:
        return spec.replace_attributes(description=(
            f"Foundations (shared by every experiment): {text}\n\n"
            f"Partition: one domain, e.g. `{domain}`. Materialise it once per domain before any experiment."
        ))
    iteration = (spec.group_name or "").removeprefix("iteration_")
    return spec.replace_attributes(description=(
        f"Iteration {iteration}: {text}\n\n"
        f"Partition: one domain × one experiment, picked in the materialise dialog as `domain` and `experiment` "
        f"(e.g. `{domain}` and `{catalog.default_experiment}`, the default experiment; key `{domain}|{catalog.default_experiment}`). "
        f"Experiments are listed in the catalogue (experiments.yaml); an experiment with `domains:` runs only on those "
        f"(other pairs are offered but fail at once). A new catalogue entry appears within seconds, no restart needed."
    ))


def with_descriptions(assets: Sequence[AssetsDefinition], catalog: ExperimentCatalog) -> list[AssetsDefinition]:
    """``assets`` with descriptions that say their iteration and their partitions."""
    return list(map_asset_specs(lambda spec: describe(spec, catalog), assets))

"""Orchestration: Dagster assets, partitions, resources and jobs. Thin by design."""

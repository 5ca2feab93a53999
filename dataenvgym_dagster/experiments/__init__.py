"""Experiment recipes: a YAML file validated into typed settings."""

from dataenvgym_dagster.experiments.config import (
    DomainSettings,
    ExperimentCatalog,
    ExperimentSettings,
    load_catalog,
)

__all__ = ["DomainSettings", "ExperimentCatalog", "ExperimentSettings", "load_catalog"]

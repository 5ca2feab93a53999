"""The teacher resource: which data generation engine and skill discoverer an experiment uses."""

from __future__ import annotations

from collections.abc import Callable

from dagster import ConfigurableResource

from dataenvgym_dagster.domain.discovery import GoldSkillDiscoverer, SkillDiscoverer
from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.domain.teachers.protocol import DataGenerationEngine
from dataenvgym_dagster.experiments import ExperimentSettings

Log = Callable[[str], None]


class TeacherResource(ConfigurableResource):
    """Builds the engine (``teacher``) and discoverer an experiment's settings name, for one partition."""

    def engine(
        self, domain: Domain, settings: ExperimentSettings, *, experiment: str, iteration: int, log: Log
    ) -> DataGenerationEngine:
        if settings.teacher == "offline":
            return OfflineTeacher(domain)
        raise ValueError(f"experiment {experiment!r} names teacher {settings.teacher!r}, which this resource cannot build")

    def discoverer(
        self, domain: Domain, settings: ExperimentSettings, *, experiment: str, iteration: int, log: Log
    ) -> SkillDiscoverer:
        if settings.discoverer == "gold":
            return GoldSkillDiscoverer(domain.taxonomy)
        raise ValueError(
            f"experiment {experiment!r} names discoverer {settings.discoverer!r}, which this resource cannot build"
        )

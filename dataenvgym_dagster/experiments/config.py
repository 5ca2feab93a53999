"""The experiment catalogue: domains, experiments and the number of iterations.

The catalogue ships as ``experiments.yaml`` beside this module; set ``DATAENVGYM_EXPERIMENTS``
to the path of your own file to replace it.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dataenvgym_dagster.domain.environments import ENVIRONMENTS
from dataenvgym_dagster.domain.protocol import get_domain
from dataenvgym_dagster.domain.quality import QualitySettings
from dataenvgym_dagster.machinery.student.model import StudentArchitecture
from dataenvgym_dagster.machinery.student.training import TrainingSettings

DEFAULT_CATALOG = Path(__file__).with_name("experiments.yaml")
CATALOG_ENV_VAR = "DATAENVGYM_EXPERIMENTS"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BenchmarkSettings(_Strict):
    validation_per_skill: int = Field(40, gt=0)
    test_per_skill: int = Field(40, gt=0)
    seed: int = 0


class BaseStudentSettings(_Strict):
    """The locally built base student: architecture, pretraining corpus and recipe."""

    architecture: StudentArchitecture = StudentArchitecture()
    tokenizer_vocab_size: int = 64
    pretraining_examples: int = Field(20_000, gt=0)
    pretraining_mixture: dict[str, float] = Field(
        default_factory=dict, description="Relative weight per skill; skills left out get weight 1."
    )
    training: TrainingSettings = TrainingSettings()
    seed: int = 0


class DomainSettings(_Strict):
    benchmark: BenchmarkSettings = BenchmarkSettings()
    base_student: BaseStudentSettings = BaseStudentSettings()
    max_answer_tokens: int = Field(6, gt=0, description="Generation length limit at evaluation.")


class TrainingRecipe(StrEnum):
    continue_with_replay = "continue_with_replay"
    retrain_from_base = "retrain_from_base"


class StudentTrainingSettings(_Strict):
    recipe: TrainingRecipe = TrainingRecipe.continue_with_replay
    replay_fraction: float = Field(
        0.5, ge=0, lt=1, description="Share of each iteration's training set replayed from earlier data."
    )
    settings: TrainingSettings = TrainingSettings()


class ExperimentSettings(_Strict):
    """A named recipe: environment, policy, teacher, budget, training and seed(s)."""

    environment: Literal["open_ended", "skill_list", "skill_tree"] = "skill_list"
    policy: str = "learnable"
    teacher: Literal["offline", "llm"] = "offline"
    discoverer: Literal["gold", "llm"] = Field("gold", description="Who labels validation questions with skills.")
    data_budget: int = Field(8_000, gt=0, description="Generated examples per iteration.")
    shortfall_tolerance: float = Field(
        0.05, ge=0, le=1, description="Largest share of the budget the teacher may fail to produce before the asset fails."
    )
    quality: QualitySettings = QualitySettings()
    training: StudentTrainingSettings = StudentTrainingSettings()
    seed: int = 0
    seeds: tuple[int, ...] | None = Field(
        None, min_length=1, description="Run once per seed, as partitions '<name>_seed<seed>'; replaces seed."
    )

    @model_validator(mode="after")
    def _policy_exists_for_environment(self) -> ExperimentSettings:
        policies = ENVIRONMENTS[self.environment].policies
        if self.policy not in policies:
            raise ValueError(
                f"policy {self.policy!r} does not exist for environment {self.environment!r}; "
                f"choose one of: {', '.join(policies)}"
            )
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {list(self.seeds)} repeat a seed")
        return self

    @property
    def uses_state(self) -> bool:
        return ENVIRONMENTS[self.environment].policies[self.policy].uses_state


class ExperimentCatalog(_Strict):
    iterations: int = Field(3, ge=1, le=20, description="Teaching iterations after the base evaluation.")
    default_experiment: str
    domains: dict[str, DomainSettings]
    experiments: dict[str, ExperimentSettings]

    @model_validator(mode="after")
    def _names_resolve(self) -> ExperimentCatalog:
        for name in self.domains:
            get_domain(name)  # raises with the list of known domains
        for name, settings in self.domains.items():
            unknown = set(settings.base_student.pretraining_mixture) - set(get_domain(name).taxonomy.skills)
            if unknown:
                raise ValueError(f"domains.{name}.base_student.pretraining_mixture names unknown skills {sorted(unknown)}")
        if self.default_experiment not in self.runs:
            raise ValueError(
                f"default_experiment {self.default_experiment!r} is not one of the experiments: "
                f"{', '.join(self.runs)}"
            )
        return self

    def domain(self, name: str) -> DomainSettings:
        try:
            return self.domains[name]
        except KeyError:
            raise KeyError(f"unknown domain {name!r}; this catalogue has: {', '.join(self.domains)}") from None

    @property
    def runs(self) -> dict[str, ExperimentRun]:
        """Every experiment × seed, by partition key: the name, or ``<name>_seed<seed>`` for multi-seed ones."""
        runs = {}
        for name, settings in self.experiments.items():
            if settings.seeds is None:
                runs[name] = ExperimentRun(name=name, settings=settings)
            for seed in settings.seeds or ():
                key = f"{name}_seed{seed}"
                if key in self.experiments:
                    raise ValueError(f"experiment {key!r} clashes with seed {seed} of multi-seed experiment {name!r}; rename it")
                runs[key] = ExperimentRun(name=name, settings=settings.model_copy(update={"seed": seed, "seeds": None}))
        return runs

    def run(self, key: str) -> ExperimentRun:
        try:
            return self.runs[key]
        except KeyError:
            raise KeyError(f"unknown experiment {key!r}; this catalogue has: {', '.join(self.runs)}") from None

    def experiment(self, key: str) -> ExperimentSettings:
        """The settings of an experiment partition key (a multi-seed key has its seed filled in)."""
        return self.run(key).settings


class ExperimentRun(_Strict):
    """One partition of the experiment dimension: an experiment with one seed."""

    name: str
    settings: ExperimentSettings


class CatalogError(ValueError):
    """The experiment catalogue file is missing or invalid."""


def catalog_path() -> Path:
    return Path(os.environ.get(CATALOG_ENV_VAR) or DEFAULT_CATALOG)


def load_catalog(path: Path | None = None) -> ExperimentCatalog:
    """Read and validate the catalogue at ``path`` (default: ``$DATAENVGYM_EXPERIMENTS`` or the shipped one)."""
    path = path or catalog_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CatalogError(f"experiment catalogue {path} does not exist; unset {CATALOG_ENV_VAR} to use the default") from None
    except yaml.YAMLError as error:
        raise CatalogError(f"experiment catalogue {path} is not valid YAML: {error}") from None
    if isinstance(raw, dict):  # top-level ``x-`` keys hold YAML anchors for sharing settings
        raw = {key: value for key, value in raw.items() if not str(key).startswith("x-")}
    try:
        return ExperimentCatalog.model_validate(raw)
    except (ValidationError, KeyError) as error:
        raise CatalogError(f"experiment catalogue {path} is invalid:\n{error}") from None

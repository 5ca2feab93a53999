"""The experiment catalogue: domains, experiments and the number of iterations.

The catalogue ships as ``experiments.yaml`` beside this module; set ``DATAENVGYM_EXPERIMENTS``
to the path of your own file to replace it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dataenvgym_dagster.agents.loading import (
    BUILTIN_ENGINES,
    POLICY_GROUP,
    check_engine_name,
    check_policy_name,
    installed,
    is_import_path,
    load_policy,
)
from dataenvgym_dagster.domain.environments import get_environment
from dataenvgym_dagster.domain.errors import one_line, read_utf8_text
from dataenvgym_dagster.domain.protocol import BenchmarkSpec, WorkedSolutions
from dataenvgym_dagster.domain.quality import QualitySettings
from dataenvgym_dagster.domain.registry import get_domain
from dataenvgym_dagster.domain.teachers.drift import EngineDrift
from dataenvgym_dagster.experiments.errors import describe_validation_error, describe_yaml_error, duplicate_key
from dataenvgym_dagster.machinery.images import ImageGeneratorSettings
from dataenvgym_dagster.machinery.student.settings import StudentArchitecture, StudentSpec, TrainingSettings

DEFAULT_CATALOG = Path(__file__).with_name("experiments.yaml")
CATALOG_ENV_VAR = "DATAENVGYM_EXPERIMENTS"
# An experiment's name is a partition key and a folder name under the home: no '|', ',', '/', spaces.
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


BenchmarkSettings = BenchmarkSpec  # the catalogue's ``benchmark:`` block is the domain layer's spec


class HeadStart(_Strict):
    """Skills the base student is pretrained on; every other skill is barely seen (``others_weight`` each).

    The paper's point that skills differ in what the student already knows, made strong: data for a
    head-start skill is mostly wasted, data for the others is where the gain is, so an agent that
    reads the student's state has something to find. Off unless the catalogue sets it.
    """

    skills: list[str] = Field(min_length=1, description="The skills the base student gets a head start on (weight 1 each).")
    others_weight: float = Field(
        0.05, ge=0, lt=1,
        description="Pretraining weight of every other skill: small but above 0 keeps their words in the tokenizer.",
    )

    def mixture(self, skills: Sequence[str]) -> dict[str, float]:
        """The pretraining weight of each of ``skills``."""
        head = set(self.skills)
        return {skill: 1.0 if skill in head else self.others_weight for skill in skills}


class BaseStudentSettings(_Strict):
    """How the tiny student (``student.model: tiny``) is built: architecture, pretraining corpus and recipe.

    The pretraining corpus is drawn from the domain's procedural generators for every student;
    only the tiny one is pretrained on it.
    """

    architecture: StudentArchitecture = StudentArchitecture()
    tokenizer_vocab_size: int = 64
    pretraining_examples: int = Field(20_000, gt=0)
    pretraining_mixture: dict[str, float] = Field(
        default_factory=dict, description="Relative weight per skill; skills left out get weight 1."
    )
    head_start: HeadStart | None = Field(
        None,
        description="An environment with a head start (off by default): the base student is pretrained on these skills "
        "and barely sees the others, so it starts out mastering some skills and not others.",
    )
    training: TrainingSettings = TrainingSettings()
    seed: int = 0

    @model_validator(mode="after")
    def _one_mixture(self) -> BaseStudentSettings:
        if self.head_start is not None and self.pretraining_mixture:
            raise ValueError(
                "base_student sets both pretraining_mixture and head_start; the head start replaces the mixture, "
                "so remove one of them"
            )
        return self

    def mixture(self, skills: Sequence[str]) -> dict[str, float]:
        """The pretraining weight of each of ``skills``: the head start's when there is one, else the mixture's (1 if unnamed)."""
        if self.head_start is not None:
            return self.head_start.mixture(skills)
        return {skill: self.pretraining_mixture.get(skill, 1.0) for skill in skills}


class DomainSettings(_Strict):
    default_experiment: str | None = Field(
        None, description="What `dataenvgym run --domain <this>` runs when no experiment is named; default: the catalogue's."
    )
    benchmark: BenchmarkSettings = BenchmarkSettings()
    student: StudentSpec = StudentSpec()
    base_student: BaseStudentSettings = BaseStudentSettings()
    image_generator: ImageGeneratorSettings = Field(
        ImageGeneratorSettings(), description="vqa: what makes the images of teacher-written specs (procedural or diffusers)."
    )
    offline_drift: EngineDrift | None = Field(
        None,
        description="An imperfect offline teacher (off by default): on these skills a share of what it writes are "
        "correct problems of other skills, labelled with the skill asked for (see domain/teachers/drift.py).",
    )


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

    domains: tuple[str, ...] | None = Field(
        None, min_length=1,
        description="The domains this experiment runs on (partitions exist for these pairs only); default: every domain.",
    )
    environment: Literal["open_ended", "skill_list", "skill_tree"] = "skill_list"
    policy: str = Field(
        "learnable",
        description="A built-in policy of the environment, an entry point of dataenvgym.policies, or 'package.module:attribute'.",
    )
    teacher: str = Field(
        "offline",
        description="The data generation engine: offline, llm, an entry point of dataenvgym.engines, or 'package.module:Class'; "
        "also written {engine: <one of those>, options: {...}}.",
    )
    teacher_options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for an outside engine's class (the `options:` of `teacher: {engine: ...}`)."
    )
    discoverer: Literal["gold", "llm"] = Field("gold", description="Who labels validation questions with skills.")
    data_budget: int = Field(8_000, gt=0, description="Generated examples per iteration.")
    shortfall_tolerance: float = Field(
        0.05, ge=0, le=1, description="Largest share of the budget the teacher may fail to produce before the asset fails."
    )
    quality: QualitySettings = QualitySettings()
    training: StudentTrainingSettings = StudentTrainingSettings()
    student: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the domain's student spec for this experiment (e.g. lora, generation)."
    )
    seed: int = 0
    seeds: tuple[int, ...] | None = Field(
        None, min_length=1, description="Run once per seed, as partitions '<name>_seed<seed>'; replaces seed."
    )
    automation: Literal["off", "eager"] = Field(
        "off",
        description="eager: the Dagster daemon advances each partition of this experiment to its last iteration, "
        "one iteration per run, and stops at the first failed run (see defs/automation.py).",
    )
    schedule: str | None = Field(
        None,
        description="A cron string (e.g. '0 3 * * *'): a Dagster schedule re-runs the whole teaching loop of "
        "every seed of this experiment, on every domain, at those times (UTC).",
    )

    @model_validator(mode="before")
    @classmethod
    def _teacher_block(cls, data: Any) -> Any:
        """``teacher: {engine: X, options: {...}}`` is ``teacher: X`` with ``teacher_options``."""
        if isinstance(data, dict) and isinstance(data.get("teacher"), dict):
            block = dict(data["teacher"])
            unknown = set(block) - {"engine", "options"}
            if "engine" not in block or unknown:
                raise ValueError(f"teacher: {block} must have `engine:` (and optionally `options:`), nothing else")
            data = {**data, "teacher": block["engine"], "teacher_options": block.get("options") or {}}
        return data

    @model_validator(mode="after")
    def _policy_exists_for_environment(self) -> ExperimentSettings:
        check_policy_name(self.environment, self.policy)  # import paths are imported when a run needs them
        check_engine_name(self.teacher)
        if self.teacher_options and self.teacher in BUILTIN_ENGINES:
            raise ValueError(f"teacher {self.teacher!r} is built in and takes no options; set them for an outside engine only")
        if self.domains is not None and len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains {list(self.domains)} repeat a domain")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {list(self.seeds)} repeat a seed")
        if self.schedule is not None and len(self.schedule.split()) != 5:
            raise ValueError(
                f"schedule {self.schedule!r} is not a cron string of five fields (minute hour day month weekday), "
                "e.g. '0 3 * * *' for 03:00 UTC every day"
            )
        return self

    @property
    def uses_state(self) -> bool:
        """Whether the policy reads the state; imports an outside policy to ask it."""
        return load_policy(self.environment, self.policy).uses_state


# What a suite's grid decides for each of its experiments; its shared ``settings`` may not set them
# (a ``seed`` there, e.g. from a shared YAML anchor, is replaced by each of the suite's seeds).
SUITE_AXES = ("domains", "environment", "policy", "seeds")


class SuiteSettings(_Strict):
    """A grid of experiments compared together: domains × environments × agents × seeds.

    Every experiment of the grid shares ``settings`` (budget, teacher, training, student overrides:
    any experiment setting except those the grid decides), so its runs differ only by environment,
    agent and seed, and the benchmark split and base student are the domains' own. Each (environment,
    agent) becomes the experiment ``<suite>.<environment>.<agent>``, whose seeds are the partitions
    ``<suite>.<environment>.<agent>_seed<seed>`` on each of the suite's domains.
    """

    domains: tuple[str, ...] = Field(min_length=1)
    environments: tuple[Literal["open_ended", "skill_list", "skill_tree"], ...] = Field(min_length=1)
    agents: tuple[str, ...] | dict[str, tuple[str, ...]] = Field(
        min_length=1,
        description="Policy names, each run in every environment of the suite that has it (no_state and "
        "negative_control are in all three; learnable only in skill_list, near_misses only in open_ended, …; "
        "an outside agent, by entry point or import path, in all); or a mapping environment -> policy names.",
    )
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict, description="Experiment settings shared by the whole grid.")

    @model_validator(mode="after")
    def _grid_is_sound(self) -> SuiteSettings:
        lists = {"domains": self.domains, "environments": self.environments, "seeds": self.seeds}
        lists.update({"agents": self.agents} if isinstance(self.agents, tuple) else {f"agents.{e}": a for e, a in self.agents.items()})
        for axis, values in lists.items():
            if len(set(values)) != len(values):
                raise ValueError(f"suite {axis} {list(values)} repeat a value")
        decided = sorted(set(self.settings) & set(SUITE_AXES))
        if decided:
            raise ValueError(
                f"suite settings set {decided}, which the suite's grid decides; "
                "list them as the suite's domains, environments, agents and seeds instead"
            )
        if isinstance(self.agents, dict):
            for environment, agents in self.agents.items():
                if environment not in self.environments:
                    raise ValueError(f"suite agents name environment {environment!r}, which is not one of its environments {list(self.environments)}")
                for agent in agents:
                    try:
                        check_policy_name(environment, agent)
                    except ValueError as error:
                        raise ValueError(f"suite agents.{environment}: {error}") from None
            return self
        for agent in self.agents:
            if not any(_offers(environment, agent) for environment in self.environments):
                offered = sorted({p for environment in self.environments for p in get_environment(environment).policies})
                raise ValueError(
                    f"agent {agent!r} exists in none of the suite's environments {list(self.environments)}; "
                    f"choose from: {', '.join(offered)}, an entry point of {POLICY_GROUP}, or 'package.module:attribute'"
                )
        return self

    def experiments(self, suite: str) -> dict[str, dict[str, Any]]:
        """The grid as raw experiment entries, by experiment name, in grid order (environment, then agent)."""
        return {
            f"{suite}.{environment}.{re.sub(r'[^A-Za-z0-9_.-]', '-', agent)}": {  # 'pkg.mod:policy' -> 'pkg.mod-policy'
                **self.settings, "environment": environment, "policy": agent,
                "domains": list(self.domains), "seeds": list(self.seeds),
            }
            for environment in self.environments
            for agent in self.agents_in(environment)
        }

    def agents_in(self, environment: str) -> tuple[str, ...]:
        """The agents the suite runs in ``environment``."""
        if isinstance(self.agents, dict):
            return tuple(self.agents.get(environment, ()))
        return tuple(agent for agent in self.agents if _offers(environment, agent))


def _offers(environment: str, agent: str) -> bool:
    """Whether a suite's list of agents runs ``agent`` in ``environment``: a built-in policy where it
    exists, an outside agent (entry point or import path) in every environment."""
    return agent in get_environment(environment).policies or is_import_path(agent) or agent in installed(POLICY_GROUP)


class ExperimentCatalog(_Strict):
    iterations: int = Field(3, ge=1, le=20, description="Teaching iterations after the base evaluation.")
    default_experiment: str
    domains: dict[str, DomainSettings]
    experiments: dict[str, ExperimentSettings]
    suites: dict[str, SuiteSettings] = Field(
        default_factory=dict, description="Grids of experiments run and compared together (see SuiteSettings)."
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_suites(cls, raw: Any) -> Any:
        """Add each suite's experiments to ``experiments``, so they are partitions like any other."""
        if not isinstance(raw, dict) or not raw.get("suites"):
            return raw
        experiments = dict(raw.get("experiments") or {})
        suites = {}
        for name, settings in dict(raw["suites"]).items():
            if not EXPERIMENT_NAME.fullmatch(str(name)) or "." in str(name):
                raise ValueError(f"suite name {name!r} must be letters, digits, '_' and '-' (no '.', which joins its experiment names)")
            suite = settings if isinstance(settings, SuiteSettings) else SuiteSettings.model_validate(settings)
            suites[name] = suite
            for experiment, entry in suite.experiments(name).items():
                if experiment in experiments and not isinstance(settings, SuiteSettings):
                    raise ValueError(f"suite {name!r} makes experiment {experiment!r}, which the catalogue already has; rename one")
                experiments[experiment] = entry
        return {**raw, "experiments": experiments, "suites": suites}

    @model_validator(mode="after")
    def _names_resolve(self) -> ExperimentCatalog:
        for name in self.domains:
            get_domain(name)  # raises with the list of known domains
        for name, settings in self.experiments.items():
            if not EXPERIMENT_NAME.fullmatch(name):
                raise ValueError(
                    f"experiment name {name!r} is not usable as a partition key and folder name; "
                    "use letters, digits, '_', '.' and '-' (starting with a letter or digit)"
                )
            unknown = [domain for domain in settings.domains or () if domain not in self.domains]
            if unknown:
                raise ValueError(
                    f"experiments.{name}.domains names unknown domain {unknown[0]!r}; "
                    f"this catalogue's domains are: {', '.join(self.domains)}"
                )
        for name, settings in self.domains.items():
            domain = get_domain(name)
            unknown = set(settings.base_student.pretraining_mixture) - set(domain.taxonomy.skills)
            if unknown:
                raise ValueError(f"domains.{name}.base_student.pretraining_mixture names unknown skills {sorted(unknown)}")
            head_start = settings.base_student.head_start
            unknown = set(head_start.skills if head_start else ()) - set(domain.taxonomy.skills)
            if unknown:
                raise ValueError(
                    f"domains.{name}.base_student.head_start.skills names unknown skills {sorted(unknown)}; "
                    f"{name}'s skills are: {', '.join(domain.taxonomy.skills)}"
                )
            if settings.offline_drift is not None:
                try:
                    settings.offline_drift.check(name, domain.taxonomy.skills)
                except ValueError as error:
                    raise ValueError(f"domains.{name}.offline_drift: {error}") from None
            source = domain.sources.get(settings.benchmark.source)
            if source is None:
                raise ValueError(
                    f"domains.{name}.benchmark.source {settings.benchmark.source!r} is not a source of {name}; "
                    f"choose one of: {', '.join(domain.sources)}"
                )
            if settings.default_experiment is not None and settings.default_experiment not in self.runs:
                raise ValueError(f"domains.{name}.default_experiment {settings.default_experiment!r} is not one of the experiments")
            if settings.default_experiment is not None and name not in self.domains_of(settings.default_experiment):
                raise ValueError(
                    f"domains.{name}.default_experiment {settings.default_experiment!r} does not run on {name}; "
                    f"its domains are: {', '.join(self.domains_of(settings.default_experiment))}"
                )
            if source.needs_path and not settings.benchmark.path:
                raise ValueError(f"domains.{name}.benchmark.source {source.name!r} reads files: set benchmark.path")
        for domain, key in self.pairs:
            student = self.student(domain, key)  # overrides must be valid for every domain they apply to
            if student.target == "solution" and not isinstance(get_domain(domain), WorkedSolutions):
                raise ValueError(
                    f"{domain}|{key}: student.target 'solution' needs worked solutions, which the {domain} domain does "
                    "not have (math and code do); use student.target: answer for it"
                )
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

    def domains_of(self, experiment: str) -> tuple[str, ...]:
        """The domains an experiment partition key runs on: those it names, or every domain."""
        return self.run(experiment).settings.domains or tuple(self.domains)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (domain, experiment partition key) that makes sense: the loop's partitions."""
        return [(domain, key) for key in self.runs for domain in self.domains_of(key)]

    def check_pair(self, domain: str, experiment: str) -> None:
        """Raise, naming the valid choices, unless ``domain|experiment`` is one of the loop's partitions."""
        self.domain(domain)
        domains = self.domains_of(experiment)
        if domain not in domains:
            others = ", ".join(f"{d}|{experiment}" for d in domains)
            raise ValueError(
                f"experiment {experiment!r} does not run on domain {domain!r}: its `domains:` in the catalogue are "
                f"{', '.join(domains)}, so {domain}|{experiment} is not a partition to run; pick {others}, "
                f"or add {domain} to experiments.{self.run(experiment).name}.domains"
            )

    def student(self, domain: str, experiment: str) -> StudentSpec:
        """The student of ``domain|experiment``: the domain's spec with the experiment's overrides."""
        spec = self.domain(domain).student
        overrides = self.run(experiment).settings.student
        if not overrides:
            return spec
        merged = spec.model_dump()
        for key, value in overrides.items():
            merged[key] = {**merged[key], **value} if isinstance(merged.get(key), dict) and isinstance(value, dict) else value
        try:
            return StudentSpec.model_validate(merged)
        except ValidationError as error:
            raise ValueError(
                f"experiments.{self.run(experiment).name}.student is invalid for domain {domain}: {one_line(error)}"
            ) from None

    def experiment(self, key: str) -> ExperimentSettings:
        """The settings of an experiment partition key (a multi-seed key has its seed filled in)."""
        return self.run(key).settings

    def suite(self, name: str) -> SuiteSettings:
        try:
            return self.suites[name]
        except KeyError:
            known = ", ".join(self.suites) or "none (add a `suites:` block)"
            raise KeyError(f"unknown suite {name!r}; this catalogue's suites: {known}") from None

    def suite_partitions(self, name: str) -> list[tuple[str, str]]:
        """Every (domain, experiment partition key) of a suite: domain, then environment, agent and seed."""
        suite = self.suite(name)
        keys = [f"{experiment}_seed{seed}" for experiment in suite.experiments(name) for seed in suite.seeds]
        return [(domain, key) for domain in suite.domains for key in keys]


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
    if path.is_dir():
        raise CatalogError(f"experiment catalogue {path} is a folder; point {CATALOG_ENV_VAR} at the YAML file itself")
    try:
        text = read_utf8_text(path, "experiment catalogue", CatalogError, "save it as UTF-8")
    except FileNotFoundError:
        raise CatalogError(f"experiment catalogue {path} does not exist; unset {CATALOG_ENV_VAR} to use the default") from None
    return _parse_catalog(str(path), text)


@functools.lru_cache(maxsize=8)
def _parse_catalog(path: str, text: str) -> ExperimentCatalog:
    """The catalogue in ``text`` (read from ``path``), parsed and validated once per distinct text.

    Every asset reads the catalogue at run time (an edited file applies without a restart); the
    file is re-read each time, but parsing and validating it again (~0.06 s, ~30 times in a run of
    the default experiment) is only done when its text changed. The catalogue is frozen, so the
    cached object can be shared."""
    try:
        raw = yaml.safe_load(text)
        twice = duplicate_key(text)
    except yaml.YAMLError as error:
        raise CatalogError(f"experiment catalogue {path} is not valid YAML: {describe_yaml_error(error)}") from None
    if twice is not None:
        raise CatalogError(
            f"experiment catalogue {path} is invalid: {twice} is written twice, and YAML would keep only the last; "
            "give each entry its own name, or remove one"
        )
    if isinstance(raw, dict):  # top-level ``x-`` keys hold YAML anchors for sharing settings
        raw = {key: value for key, value in raw.items() if not str(key).startswith("x-")}
    try:
        return ExperimentCatalog.model_validate(raw)
    except ValidationError as error:
        raise CatalogError(f"experiment catalogue {path} is invalid: {describe_validation_error(error, text)}") from None
    except KeyError as error:
        raise CatalogError(f"experiment catalogue {path} is invalid: {error.args[0] if error.args else error}") from None

"""The teacher resource: which data generation engine and skill discoverer an experiment uses.

``teacher: offline`` and ``discoverer: gold`` need nothing. ``teacher: llm`` and
``discoverer: llm`` use the chat endpoint configured here: any OpenAI-compatible server
(OpenAI, ``vllm serve`` …). ``definitions.py`` builds the resource from ``DATAENVGYM_TEACHER_*``
environment variables (see ``ENV_VARS``); run config under ``resources.teacher.config``
overrides them per run. The API key is read from the environment through ``dagster.EnvVar``,
so it never appears in run config, logs, metadata or the warehouse.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from dataenvgym_dagster.defs.resources import default_home
from dataenvgym_dagster.domain.discovery import GoldSkillDiscoverer, SkillDiscoverer
from dataenvgym_dagster.domain.discovery_llm import LlmSkillDiscoverer
from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.teachers.llm import LlmTeacher
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.domain.teachers.protocol import DataGenerationEngine
from dataenvgym_dagster.experiments import ExperimentSettings
from dataenvgym_dagster.machinery.teacher import EndpointSettings, OpenAIChat, ReplyCache, WarehouseLedger
from dataenvgym_dagster.machinery.warehouse import Warehouse

Log = Callable[[str], None]

API_KEY_ENV_VARS = ("DATAENVGYM_TEACHER_API_KEY", "OPENAI_API_KEY")  # the first one set is used
# Environment variable → resource field, for every setting a user may want to change without code.
ENV_VARS: dict[str, str] = {
    "DATAENVGYM_TEACHER_BASE_URL": "base_url",
    "DATAENVGYM_TEACHER_MODEL": "model",
    "DATAENVGYM_TEACHER_TEMPERATURE": "temperature",
    "DATAENVGYM_TEACHER_MAX_TOKENS": "max_completion_tokens",
    "DATAENVGYM_TEACHER_MAX_CONCURRENCY": "max_concurrency",
    "DATAENVGYM_TEACHER_TIMEOUT_S": "timeout_s",
    "DATAENVGYM_TEACHER_MAX_ATTEMPTS": "max_attempts",
    "DATAENVGYM_TEACHER_PARSE_ATTEMPTS": "parse_attempts",
    "DATAENVGYM_TEACHER_BACKOFF_S": "backoff_initial_s",
    "DATAENVGYM_TEACHER_STRUCTURED_OUTPUT": "structured_output",
    "DATAENVGYM_TEACHER_PRICE_INPUT": "price_per_million_input_tokens",
    "DATAENVGYM_TEACHER_PRICE_OUTPUT": "price_per_million_output_tokens",
    "DATAENVGYM_TEACHER_CACHE_MODE": "cache_mode",
    "DATAENVGYM_TEACHER_EXAMPLES_PER_CALL": "examples_per_call",
}


class TeacherResource(ConfigurableResource):
    """Builds the engine (``teacher``) and discoverer an experiment's settings name, for one partition.

    The fields configure the LLM teacher; defaults are those of :class:`EndpointSettings`.
    """

    home: str | None = Field(None, description="$DATAENVGYM_HOME: the reply cache and the ledger live there.")
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: str | None = Field(None, description="Set with dagster.EnvVar, never as a literal.")
    temperature: float = 0.7
    max_completion_tokens: int | None = 4096
    max_concurrency: int = 16
    timeout_s: float = 60.0
    max_attempts: int = 6
    parse_attempts: int = 3
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    structured_output: bool = True
    price_per_million_input_tokens: float = 0.0
    price_per_million_output_tokens: float = 0.0
    cache_mode: Literal["live", "replay", "refresh"] = "live"
    examples_per_call: int = Field(20, description="Problems the LLM teacher asks for per call.")
    questions_per_call: int = Field(40, description="Questions the LLM discoverer labels per call.")

    def engine(
        self, domain: Domain, settings: ExperimentSettings, *, experiment: str, iteration: int, log: Log
    ) -> DataGenerationEngine:
        if settings.teacher == "offline":
            return OfflineTeacher(domain)
        if settings.teacher == "llm":
            chat = self.chat(domain.name, experiment=experiment, iteration=iteration, log=log)
            return LlmTeacher(domain.name, chat, examples_per_call=self.examples_per_call)
        raise ValueError(f"experiment {experiment!r} names teacher {settings.teacher!r}, which this resource cannot build")

    def discoverer(
        self, domain: Domain, settings: ExperimentSettings, *, experiment: str, iteration: int, log: Log
    ) -> SkillDiscoverer:
        if settings.discoverer == "gold":
            return GoldSkillDiscoverer(domain.taxonomy)
        if settings.discoverer == "llm":
            chat = self.chat(domain.name, experiment=experiment, iteration=iteration, log=log)
            return LlmSkillDiscoverer(chat, seed=settings.seed, questions_per_call=self.questions_per_call)
        raise ValueError(
            f"experiment {experiment!r} names discoverer {settings.discoverer!r}, which this resource cannot build"
        )

    def endpoint(self) -> EndpointSettings:
        fields = self.model_dump(exclude={"home", "examples_per_call", "questions_per_call"})
        return EndpointSettings(**fields)

    def chat(self, domain: str, *, experiment: str, iteration: int, log: Log) -> OpenAIChat:
        """The chat client for one partition: its calls are cached under the home and land in its ledger."""
        home = Path(self.home) if self.home else default_home()
        ledger = WarehouseLedger(Warehouse(home), domain=domain, experiment=experiment, iteration=iteration)
        return OpenAIChat(self.endpoint(), ReplyCache(home / "teacher_cache"), ledger, log=log)


def teacher_resource_from_env(home: str, environ: dict[str, str] | None = None) -> TeacherResource:
    """The resource configured by ``DATAENVGYM_TEACHER_*`` variables (``ENV_VARS``); unset ones keep defaults.

    The API key, if one of ``API_KEY_ENV_VARS`` is set, is passed as ``EnvVar``: Dagster resolves
    it when a run starts and shows only the variable's name.
    """
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {"home": home}
    for variable, field in ENV_VARS.items():
        if raw := environ.get(variable):
            values[field] = _parse(variable, field, raw)
    key_variable = next((name for name in API_KEY_ENV_VARS if environ.get(name)), None)
    if key_variable:
        values["api_key"] = EnvVar(key_variable)
    return TeacherResource(**values)


def _parse(variable: str, field: str, raw: str) -> object:
    default = TeacherResource.model_fields[field].default
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError
            return raw.lower() in {"1", "true", "yes"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a valid {field} (default {default!r}); fix or unset it") from None
    if field == "cache_mode" and raw not in ("live", "replay", "refresh"):
        raise ValueError(f"{variable}={raw!r} is not a cache mode; choose live, replay or refresh")
    return raw

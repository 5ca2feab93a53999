"""The teacher resource: which data generation engine and skill discoverer an experiment uses.

``teacher: offline`` and ``discoverer: gold`` need nothing. ``teacher: llm`` and
``discoverer: llm`` use the chat endpoint configured here: any OpenAI-compatible server
(OpenAI, ``vllm serve`` …). Its settings come from ``DATAENVGYM_TEACHER_*`` environment
variables (``ENV_VARS``), read when a run starts; run config under ``resources.teacher.config``
overrides single fields per run. The API key is passed as ``dagster.EnvVar`` (or read from the
environment at run time), so it never appears in run config, logs, metadata or the warehouse.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from dataenvgym_dagster.agents.loading import build_engine
from dataenvgym_dagster.defs.resources import default_home, open_storage
from dataenvgym_dagster.domain.discovery import GoldSkillDiscoverer, SkillDiscoverer
from dataenvgym_dagster.domain.discovery_llm import LlmSkillDiscoverer
from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.teachers.drift import DriftingEngine, EngineDrift
from dataenvgym_dagster.domain.teachers.llm import LlmTeacher
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.domain.teachers.protocol import DataGenerationEngine
from dataenvgym_dagster.experiments import ExperimentSettings
from dataenvgym_dagster.machinery.teacher import CacheMode, EndpointSettings, OpenAIChat, ReplyCache, WarehouseLedger
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
    "DATAENVGYM_TEACHER_BACKOFF_MAX_S": "backoff_max_s",
    "DATAENVGYM_TEACHER_MAX_RETRY_AFTER_S": "max_retry_after_s",
    "DATAENVGYM_TEACHER_STRUCTURED_OUTPUT": "structured_output",
    "DATAENVGYM_TEACHER_MAX_STRING_LENGTH": "max_string_length",
    "DATAENVGYM_TEACHER_MAX_LIST_LENGTH": "max_list_length",
    "DATAENVGYM_TEACHER_PRICE_INPUT": "price_per_million_input_tokens",
    "DATAENVGYM_TEACHER_PRICE_OUTPUT": "price_per_million_output_tokens",
    "DATAENVGYM_TEACHER_CACHE_MODE": "cache_mode",
    "DATAENVGYM_TEACHER_EXAMPLES_PER_CALL": "examples_per_call",
    "DATAENVGYM_TEACHER_QUESTIONS_PER_CALL": "questions_per_call",
}
EXAMPLES_PER_CALL = 20
QUESTIONS_PER_CALL = 40


class TeacherResource(ConfigurableResource):
    """Builds the engine (``teacher``) and discoverer an experiment's settings name, for one partition.

    Every field configures the LLM teacher and may be left unset: an unset field takes its
    ``DATAENVGYM_TEACHER_*`` environment variable (``ENV_VARS``) when the run starts, else the
    default of :class:`EndpointSettings`. So run config may override a single field (for
    example ``cache_mode: replay``) while the rest still come from the environment.
    """

    home: str | None = Field(None, description="Where the reply cache and ledger live; unset: $DATAENVGYM_HOME.")
    storage: str | None = Field(None, description="Where the ledger's Parquet files live (a folder or s3:// / gs:// URL); unset: the home.")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 for vllm serve.")
    model: str | None = None
    api_key: str | None = Field(None, description=f"Set with dagster.EnvVar, never as a literal; unset: {' or '.join(API_KEY_ENV_VARS)}.")
    temperature: float | None = None
    max_completion_tokens: int | None = None
    max_concurrency: int | None = None
    timeout_s: float | None = None
    max_attempts: int | None = None
    parse_attempts: int | None = None
    backoff_initial_s: float | None = None
    backoff_max_s: float | None = None
    max_retry_after_s: float | None = None
    structured_output: bool | None = None
    max_string_length: int | None = Field(None, description="Structured output: maxLength of every string (digits of every integer) in the schema sent.")
    max_list_length: int | None = Field(None, description="Structured output: maxItems of every array in the schema sent.")
    price_per_million_input_tokens: float | None = Field(None, description="US dollars per million input tokens.")
    price_per_million_output_tokens: float | None = Field(None, description="US dollars per million output tokens.")
    cache_mode: CacheMode | None = Field(None, description="live (default), replay (cache only, no network) or refresh.")
    examples_per_call: int | None = Field(None, description=f"Problems asked for per call (default {EXAMPLES_PER_CALL}).")
    questions_per_call: int | None = Field(None, description=f"Questions labelled per call (default {QUESTIONS_PER_CALL}).")

    def engine(
        self, domain: Domain, settings: ExperimentSettings, *, experiment: str, iteration: int, log: Log, target: str = "answer",
        drift: EngineDrift | None = None,
    ) -> DataGenerationEngine:
        """The experiment's engine; ``target`` is the student's (with ``solution`` the LLM teacher writes worked solutions);
        ``drift``: the domain's ``offline_drift``, which makes the offline engine imperfect (other engines ignore it)."""
        if settings.teacher == "offline":
            offline = OfflineTeacher(domain)
            return DriftingEngine(offline, drift, domain.taxonomy.skills) if drift is not None else offline
        if settings.teacher == "llm":
            chat = self.chat(domain.name, experiment=experiment, iteration=iteration, log=log)
            return LlmTeacher(domain, chat, examples_per_call=self.setting("examples_per_call") or EXAMPLES_PER_CALL, target=target)
        return build_engine(settings.teacher, domain, settings.teacher_options, experiment=experiment, iteration=iteration)

    def discoverer(
        self, domain: Domain, settings: ExperimentSettings, *, experiment: str, iteration: int, log: Log
    ) -> SkillDiscoverer:
        if settings.discoverer == "gold":
            return GoldSkillDiscoverer(domain.taxonomy)
        if settings.discoverer == "llm":
            chat = self.chat(domain.name, experiment=experiment, iteration=iteration, log=log)
            per_call = self.setting("questions_per_call") or QUESTIONS_PER_CALL
            return LlmSkillDiscoverer(chat, seed=settings.seed, questions_per_call=per_call)
        raise ValueError(
            f"experiment {experiment!r} names discoverer {settings.discoverer!r}, which this resource cannot build"
        )

    def setting(self, field: str, environ: Mapping[str, str] | None = None) -> Any:
        """The field's value: configured, else from its environment variable, else None (the default)."""
        value = getattr(self, field)
        if value is not None:
            return value
        environ = os.environ if environ is None else environ
        variable = _VARIABLES.get(field)
        raw = environ.get(variable) if variable else None
        return _parse(variable, field, raw) if raw else None

    def endpoint(self, environ: Mapping[str, str] | None = None) -> EndpointSettings:
        values = {field: self.setting(field, environ) for field in EndpointSettings.model_fields if field != "api_key"}
        environ = os.environ if environ is None else environ
        api_key = self.api_key or next((environ[name] for name in API_KEY_ENV_VARS if environ.get(name)), None)
        return EndpointSettings(**{k: v for k, v in values.items() if v is not None}, api_key=api_key)

    def chat(self, domain: str, *, experiment: str, iteration: int, log: Log) -> OpenAIChat:
        """The chat client for one partition: its calls are cached under the home and land in its ledger."""
        home = Path(self.home) if self.home else default_home()
        ledger = WarehouseLedger(Warehouse(home, open_storage(self.storage, home)), domain=domain, experiment=experiment, iteration=iteration)
        return OpenAIChat(self.endpoint(), ReplyCache(home / "teacher_cache"), ledger, log=log)


_VARIABLES = {field: variable for variable, field in ENV_VARS.items()}


def teacher_resource(home: str, environ: Mapping[str, str] | None = None, storage: str | None = None) -> TeacherResource:
    """The resource for ``definitions.py``: the home, and the API key as ``EnvVar`` when one is set.

    Dagster resolves an ``EnvVar`` when a run starts and shows only the variable's name. Other
    settings come from ``DATAENVGYM_TEACHER_*`` variables at run time (see :class:`TeacherResource`).
    """
    environ = os.environ if environ is None else environ
    key_variable = next((name for name in API_KEY_ENV_VARS if environ.get(name)), None)
    return TeacherResource(home=home, storage=storage, api_key=EnvVar(key_variable) if key_variable else None)


def _parse(variable: str, field: str, raw: str) -> object:
    """An environment variable's text as the field's type, or an error naming the variable and the fix."""
    default = EndpointSettings.model_fields[field].default if field in EndpointSettings.model_fields else 0
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError
            return raw.lower() in {"1", "true", "yes"}
        if isinstance(default, int) and not isinstance(default, bool):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a valid {field} (default {default!r}); fix or unset it") from None
    if field == "cache_mode" and raw not in ("live", "replay", "refresh"):
        raise ValueError(f"{variable}={raw!r} is not a cache mode; choose live, replay or refresh")
    return raw

"""Finding an agent by the name the catalogue gives it, and running it under the environment's rules.

A policy or engine is named in one of three ways, tried in this order:

1. a built-in short name (``learnable``, ``explore_exploit``, ``offline``, ``llm`` …);
2. an entry point of the ``dataenvgym.policies`` / ``dataenvgym.engines`` group, so that a
   pip-installed package of agents appears by name;
3. an import path ``package.module:attribute`` (the module must be importable: installed, or on
   ``PYTHONPATH``).

Every agent carries a version: the version of the distribution its entry point comes from, or
a content hash of its module's source file (built-ins and import paths). An agent may override
either with a ``version`` attribute (the LLM policies add their prompt's version).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from dataenvgym_dagster.domain.environments import get_environment
from dataenvgym_dagster.domain.environments.base import EnvironmentState, Policy, PolicyContext
from dataenvgym_dagster.domain.environments.validation import plan_problems
from dataenvgym_dagster.domain.plans import DataGenerationPlan
from dataenvgym_dagster.domain.teachers.drift import EngineDrift

POLICY_GROUP = "dataenvgym.policies"
ENGINE_GROUP = "dataenvgym.engines"
BUILTIN_ENGINES = ("offline", "llm")


class AgentError(RuntimeError):
    """An agent cannot be found or loaded, or misbehaved; the message names it and what to fix."""


class PlanRefusedError(AgentError):
    """The environment refused a policy's plan; ``plan`` and ``reasons`` are what it refused and why."""

    def __init__(self, message: str, plan: DataGenerationPlan, reasons: list[str]) -> None:
        super().__init__(message)
        self.plan = plan
        self.reasons = reasons


@dataclass(frozen=True)
class AgentInfo:
    """Who an agent is, as the warehouse records it."""

    name: str
    """As the catalogue names it: a short name, an entry-point name or ``module:attribute``."""
    version: str
    origin: str
    """``built-in``, ``entry point of <distribution>`` or ``import path``."""


@dataclass(frozen=True)
class LoadedPolicy:
    info: AgentInfo
    policy: Policy
    uses_state: bool


def is_import_path(name: str) -> bool:
    return ":" in name


def installed(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (listing them imports nothing)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def check_policy_name(environment: str, name: str) -> None:
    """Raise, naming the choices, unless ``name`` can name a policy of ``environment``.

    An import path is only checked for its shape here: it is imported when a run needs it, so a
    broken agent fails its own iteration, not the catalogue.
    """
    builtins = list(get_environment(environment).policies)
    _check_name(name, builtins, POLICY_GROUP, "policy", f"policy {name!r} does not exist for environment {environment!r}")


def check_engine_name(name: str) -> None:
    """Raise, naming the choices, unless ``name`` can name a data generation engine."""
    _check_name(name, list(BUILTIN_ENGINES), ENGINE_GROUP, "teacher engine", f"teacher {name!r} is not an engine")


def _check_name(name: str, builtins: list[str], group: str, kind: str, unknown: str) -> None:
    if is_import_path(name):
        _split(name, kind)
        return
    if name in builtins:
        return  # listing entry points reads every installed distribution: only for names that need it
    plugins = installed(group)
    if name not in builtins and name not in plugins:
        raise ValueError(
            f"{unknown}; choose one of: {', '.join(builtins)}; an entry point of {group} "
            f"({', '.join(plugins) or 'none installed'}); or an import path 'package.module:attribute'"
        )


def _split(name: str, kind: str) -> tuple[str, str]:
    module, _, attribute = name.partition(":")
    if not module or not attribute or ":" in attribute:
        raise ValueError(f"{kind} {name!r} is not an import path of the form 'package.module:attribute'")
    return module, attribute


def _load(name: str, group: str, kind: str) -> tuple[Any, str, str]:
    """The named object, its version and its origin; an :class:`AgentError` saying why it cannot be loaded."""
    plugin = None if is_import_path(name) else installed(group).get(name)  # listing entry points reads every distribution
    try:
        if plugin is not None:
            obj = plugin.load()
            dist = plugin.dist
            return obj, getattr(obj, "version", None) or (dist.version if dist else source_version(obj)), (
                f"entry point of {dist.name if dist else 'an unknown distribution'}"
            )
        module_name, attribute = _split(name, kind)
        module = importlib.import_module(module_name)
    except AgentError:
        raise
    except Exception as error:  # an agent's import can raise anything; say which agent and why
        where = f"entry point {plugin.value!r} of {group}" if plugin is not None else "import path"
        raise AgentError(
            f"{kind} {name!r} ({where}) does not import: {type(error).__name__}: {error}. "
            "Install its package into this environment or put its folder on PYTHONPATH"
        ) from error
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise AgentError(f"{kind} {name!r}: module {module_name!r} ({module.__file__}) has no attribute {attribute!r}") from None
    return obj, getattr(obj, "version", None) or source_version(obj), "import path"


def source_version(obj: object) -> str:
    """A 12-character content hash of the source file of the module that defines ``obj``."""
    module = obj if inspect.ismodule(obj) else sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    data = Path(path).read_bytes() if path and Path(path).is_file() else repr(obj).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def load_policy(environment: str, name: str) -> LoadedPolicy:
    """The policy ``name`` of ``environment``: built-in, entry point or import path, checked for its signature."""
    spec = get_environment(environment).policies.get(name)
    if spec is not None:
        version = getattr(spec.policy, "version", None) or source_version(spec.policy)
        return LoadedPolicy(AgentInfo(name, str(version), "built-in"), spec.policy, spec.uses_state)
    if not is_import_path(name) and name not in installed(POLICY_GROUP):
        check_policy_name(environment, name)  # raises with the choices
    policy, version, origin = _load(name, POLICY_GROUP, "policy")
    made_for = getattr(policy, "environment", None)
    if made_for is not None and environment not in ((made_for,) if isinstance(made_for, str) else tuple(made_for)):
        raise AgentError(f"policy {name!r} is written for environment {made_for!r}, not {environment!r}")
    if inspect.isclass(policy) or not callable(policy):
        raise AgentError(
            f"policy {name!r} is a {'class' if inspect.isclass(policy) else type(policy).__name__}, not a callable "
            "policy(state, context) -> DataGenerationPlan; name a function or an instance"
        )
    try:
        inspect.signature(policy).bind(None, None)
    except TypeError:
        raise AgentError(
            f"policy {name!r} cannot be called as policy(state, context): its signature is "
            f"{name.rpartition(':')[2]}{inspect.signature(policy)}"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): calling it will tell
        pass
    return LoadedPolicy(AgentInfo(name, str(version), origin), policy, bool(getattr(policy, "uses_state", True)))


def load_engine_factory(name: str) -> tuple[Callable[..., Any], AgentInfo]:
    """The factory of an outside engine (called with the domain and the catalogue's options)."""
    factory, version, origin = _load(name, ENGINE_GROUP, "teacher engine")
    if not callable(factory):
        raise AgentError(f"teacher engine {name!r} is a {type(factory).__name__}, not a class or factory called with the domain")
    return factory, AgentInfo(name, str(version), origin)


def build_engine(name: str, domain: Any, options: dict[str, Any], *, experiment: str, iteration: int) -> Any:
    """An outside engine: the named class or factory called with ``domain`` and ``options``, checked for the protocol."""
    where = f"(experiment {experiment!r}, domain {getattr(domain, 'name', domain)}, iteration {iteration})"
    try:
        factory, _ = load_engine_factory(name)
    except AgentError as error:
        raise AgentError(f"{error} {where}") from error
    try:
        engine = factory(domain, **options)
    except Exception as error:
        raise AgentError(
            f"teacher engine {name!r} could not be built as {name.rpartition(':')[2]}(domain, **{options}) {where}: "
            f"{type(error).__name__}: {error}"
        ) from error
    missing = [member for member in ("name", "generate", "propose_subskills") if not hasattr(engine, member)]
    if missing:
        raise AgentError(
            f"teacher engine {name!r} built a {type(engine).__name__} without {', '.join(missing)} {where}; "
            "an engine implements dataenvgym_dagster.agents.DataGenerationEngine"
        )
    return engine


def engine_info(name: str, drift: EngineDrift | None = None) -> AgentInfo:
    """A data generation engine's name and version: built-ins by their module's source, others as loaded.

    The offline engine with a ``drift`` (an imperfect engine) has ``+drift-<its version>`` added, so its
    runs are never taken for the unchanged engine's; without one the version is the unchanged engine's.
    """
    if name in BUILTIN_ENGINES:
        module = importlib.import_module(f"dataenvgym_dagster.domain.teachers.{'offline' if name == 'offline' else 'llm'}")
        version = source_version(module)
        if name == "offline" and drift is not None:
            version += f"+drift-{drift.version}"
        return AgentInfo(name, version, "built-in")
    return load_engine_factory(name)[1]


def run_policy(loaded: LoadedPolicy, environment: str, state: EnvironmentState, context: PolicyContext) -> DataGenerationPlan:
    """The policy's plan for ``state``, stamped with its name and version, once the environment accepts it.

    Raises :class:`AgentError` when the policy raises or returns something else than a plan, and
    :class:`PlanRefusedError` when the plan breaks the environment's rules; each names the agent,
    the partition and the iteration.
    """
    name = loaded.info.name
    where = f"{state.domain}|{state.experiment} iteration {state.iteration}"
    try:
        plan = loaded.policy(state, context)
    except Exception as error:
        raise AgentError(f"policy {name!r} raised on {where}: {type(error).__name__}: {error}") from error
    if not isinstance(plan, DataGenerationPlan):
        raise AgentError(
            f"policy {name!r} returned a {type(plan).__name__} on {where}; it must return a "
            "dataenvgym_dagster.agents.DataGenerationPlan (build one from a dict with DataGenerationPlan.model_validate)"
        )
    plan = plan.model_copy(update={"policy": name, "policy_version": loaded.info.version})
    return accepted(environment, state, plan, context.budget)


def accepted(environment: str, state: EnvironmentState, plan: DataGenerationPlan, budget: int) -> DataGenerationPlan:
    """``plan`` if the environment accepts it for ``state`` under ``budget``; else :class:`PlanRefusedError` with every reason."""
    problems = plan_problems(get_environment(environment), state, plan, budget)
    if problems:
        where = f"{state.domain}|{state.experiment} iteration {state.iteration}"
        raise PlanRefusedError(
            f"the {environment} environment refused the plan of policy {plan.policy!r} on {where}: {'; '.join(problems)}", plan, problems
        )
    return plan

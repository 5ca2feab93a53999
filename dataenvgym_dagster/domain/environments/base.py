"""What every environment provides: an observation step and named policies over its state."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry, PolicyAction
from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.teachers.chat import TeacherChat
from dataenvgym_dagster.domain.types import EvaluationRecord


class EnvironmentState(BaseModel):
    """What every state has: whose it is, the iteration it plans, and the evaluation it summarises."""

    model_config = ConfigDict(frozen=True)

    domain: str
    experiment: str
    iteration: int
    evaluated_iteration: int

    def warehouse_rows(self) -> list[dict[str, object]]:
        """One ``environment_states`` row per node of the state (example, skill or sub-skill)."""
        raise NotImplementedError(f"{type(self).__name__} must say how it is stored")

    def render(self) -> str:
        """The state as text: what an LLM agent's prompt shows, line for line what the fields hold."""
        raise NotImplementedError(f"{type(self).__name__} must say how it is shown as text")

    def header(self, environment: str) -> str:
        """The first line of every rendering: whose state, which iteration it plans and what it evaluated."""
        return (
            f"{environment} state of {self.domain}|{self.experiment}: planning iteration {self.iteration} "
            f"from the evaluation of iteration {self.evaluated_iteration}"
        )

    def row(self, environment: str, **columns: object) -> dict[str, object]:
        """One ``environment_states`` row: these fields, then ``columns``."""
        return {
            "domain": self.domain, "experiment": self.experiment, "iteration": self.iteration,
            "environment": environment, "evaluated_iteration": self.evaluated_iteration, **columns,
        }


class SubskillProposer(Protocol):
    """The part of a data generation engine that Skill-Tree's explore action calls."""

    def propose_subskills(self, skill: str, existing: Sequence[str], count: int, seed: int) -> list[str]: ...


@dataclass(frozen=True)
class Observation:
    """What the environment sees after an iteration's evaluation.

    ``validation`` is labelled with the skills of ``taxonomy`` (the iteration's discovered
    taxonomy, not necessarily the benchmark's gold labels). ``previous_state`` and
    ``previous_plan`` are the last iteration's, or ``None`` at iteration 1.
    """

    domain: str
    experiment: str
    iteration: int
    taxonomy: SkillTaxonomy
    validation: Sequence[EvaluationRecord]
    previous_state: EnvironmentState | None = None
    previous_plan: DataGenerationPlan | None = None


@dataclass(frozen=True)
class PolicyContext:
    """What a policy needs besides the state.

    ``budget``: the most examples the plan may ask for (the environment refuses a plan over it);
    ``seed``: the seed of this experiment's iteration (use :meth:`rng`); ``proposer``: the data
    generation engine's sub-skill proposals (Skill-Tree's explore); ``chat``: the teacher's chat
    client (cached, ledgered, replayable), for agents that ask an LLM; ``None`` until one asks.
    """

    budget: int
    seed: int
    proposer: SubskillProposer | None = None
    chat: TeacherChat | None = None

    def rng(self, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{purpose}")


Policy = Callable[[EnvironmentState, PolicyContext], DataGenerationPlan]


@dataclass(frozen=True)
class PolicySpec:
    """A named policy and whether it reads the state (the paper's With State / No State)."""

    policy: Policy
    uses_state: bool
    summary: str
    needs_chat: bool = False
    """Whether the policy asks the teacher's chat model (``PolicyContext.chat``): an endpoint or a filled cache."""


class Environment(Protocol):
    """An environment: the state type it shows, the actions a plan may record and its built-in policies."""

    name: str
    state_type: type[EnvironmentState]
    actions: Mapping[str, str]
    """The ``PolicyAction.action`` values a plan may use, with what each means."""
    policies: Mapping[str, PolicySpec]

    def observe(self, observation: Observation) -> EnvironmentState:
        """The state the policy acts on."""


def allocate(budget: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``budget`` in proportion to ``weights`` with largest-remainder rounding.

    The counts sum to exactly ``budget``; ties go to the earlier key, so the result is
    deterministic.
    """
    if budget < 0:
        raise ValueError(f"data budget must be non-negative, got {budget}")
    total = sum(weights.values())
    if not weights or total <= 0:
        raise ValueError("cannot allocate a data budget over no skills or all-zero weights")
    order = list(weights)
    shares = {key: budget * weight / total for key, weight in weights.items()}
    counts = {key: int(share) for key, share in shares.items()}
    leftover = budget - sum(counts.values())
    for key in sorted(shares, key=lambda k: (counts[k] - shares[k], order.index(k)))[:leftover]:
        counts[key] += 1
    return counts


def make_plan(
    state: EnvironmentState, environment: str, policy: str, entries: Sequence[PlanEntry], actions: Sequence[PolicyAction] = ()
) -> DataGenerationPlan:
    """A plan for ``state``'s partition; entries asking for nothing are left out."""
    return DataGenerationPlan(
        domain=state.domain,
        experiment=state.experiment,
        iteration=state.iteration,
        environment=environment,
        policy=policy,
        entries=tuple(entry for entry in entries if entry.count > 0),
        actions=tuple(actions),
    )

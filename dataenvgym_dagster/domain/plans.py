"""Data generation plans: what the policy asks the data generation engine (teacher) to make."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field


class SimilarExample(BaseModel):
    """A validation example the engine should imitate (Open-Ended), with the student's answer."""

    model_config = ConfigDict(frozen=True)

    example_id: str
    question: str
    reference: str
    prediction: str
    verdict: str = ""


class PlanEntry(BaseModel):
    """Make ``count`` training examples of ``skill``; ``rationale`` says why, for lineage.

    ``skill`` is what the engine is asked to write: a taxonomy skill (Skill-List), a sub-skill
    of ``parent_skill`` (Skill-Tree), or the label of the errors in ``similar_to`` (Open-Ended).
    """

    model_config = ConfigDict(frozen=True)

    entry_id: str
    skill: str
    count: int = Field(ge=0)
    rationale: str
    parent_skill: str | None = Field(default=None, description="The top-level skill of a Skill-Tree sub-skill.")
    similar_to: tuple[SimilarExample, ...] = Field(
        default=(), description="Examples to imitate (Open-Ended); empty means any problem of the skill."
    )


class PolicyAction(BaseModel):
    """One decision of the policy, with the state it saw and the reward that prompted it.

    Skill-Tree records ``explore``/``exploit`` per top-level skill; other environments record
    one ``allocate`` or ``select`` per skill or example. ``detail`` holds the allocation or the
    chosen items as JSON-ready values.
    """

    model_config = ConfigDict(frozen=True)

    skill: str
    action: str
    reward: float | None = Field(description="Change in the skill's validation accuracy since the previous state.")
    observed_accuracy: float | None = None
    detail: dict[str, object] = Field(default_factory=dict)


class DataGenerationPlan(BaseModel):
    """The policy's action for one iteration: entries for the engine, and the decisions behind them.

    ``policy`` and ``policy_version`` are stamped by the loop with the agent's catalogue name and
    version (whatever the agent wrote there); ``total`` may not exceed the iteration's budget.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    experiment: str
    iteration: int
    environment: str = "skill_list"
    policy: str
    policy_version: str = Field("", description="The agent's version: its package version or a content hash of its source.")
    entries: tuple[PlanEntry, ...]
    actions: tuple[PolicyAction, ...] = ()

    @property
    def total(self) -> int:
        return sum(entry.count for entry in self.entries)

    def _key(self) -> dict[str, object]:
        return {
            "domain": self.domain, "experiment": self.experiment, "iteration": self.iteration,
            "environment": self.environment, "policy": self.policy, "policy_version": self.policy_version,
        }

    def warehouse_rows(self) -> list[dict[str, object]]:
        return [
            {
                **self._key(),
                "entry_id": entry.entry_id,
                "skill": entry.skill,
                "parent_skill": entry.parent_skill,
                "count": entry.count,
                "similar_to": len(entry.similar_to),
                "rationale": entry.rationale,
            }
            for entry in self.entries
        ]

    def action_rows(self) -> list[dict[str, object]]:
        """One ``policy_actions`` row per decision: the (state, action, reward) record."""
        return [
            {
                **self._key(),
                "skill": action.skill,
                "action": action.action,
                "reward": action.reward,
                "observed_accuracy": action.observed_accuracy,
                "detail": json.dumps(action.detail, sort_keys=True),
            }
            for action in self.actions
        ]

    def refusal_rows(self, reasons: list[str]) -> list[dict[str, object]]:
        """The ``policy_actions`` row of a refused plan: action ``refused``, every reason in ``detail``."""
        return [{
            **self._key(), "skill": "", "action": "refused", "reward": None, "observed_accuracy": None,
            "detail": json.dumps({"reasons": reasons, "examples_requested": self.total}, sort_keys=True),
        }]

"""Data generation plans: what the policy asks the data generation engine (teacher) to make."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlanEntry(BaseModel):
    """Make ``count`` training examples of ``skill``; ``rationale`` says why, for lineage."""

    model_config = ConfigDict(frozen=True)

    entry_id: str
    skill: str
    count: int = Field(ge=0)
    rationale: str
    similar_to: tuple[str, ...] = Field(
        default=(), description="Questions to imitate (Open-Ended); empty means any problem of the skill."
    )


class DataGenerationPlan(BaseModel):
    """The policy's action for one iteration."""

    model_config = ConfigDict(frozen=True)

    domain: str
    experiment: str
    iteration: int
    policy: str
    entries: tuple[PlanEntry, ...]

    @property
    def total(self) -> int:
        return sum(entry.count for entry in self.entries)

    def warehouse_rows(self) -> list[dict[str, object]]:
        return [
            {
                "domain": self.domain,
                "experiment": self.experiment,
                "iteration": self.iteration,
                "policy": self.policy,
                "entry_id": entry.entry_id,
                "skill": entry.skill,
                "count": entry.count,
                "rationale": entry.rationale,
            }
            for entry in self.entries
        ]

"""What every data generation engine (teacher) implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.plans import DataGenerationPlan
from dataenvgym_dagster.domain.types import TrainingExample


class GenerationFailure(BaseModel):
    """A plan entry (or part of one) the engine could not turn into examples, and why."""

    model_config = ConfigDict(frozen=True)

    entry_id: str
    missing: int
    reason: str


class GenerationResult(BaseModel):
    """What an engine made for a plan: the examples and the shortfalls it could not fill."""

    model_config = ConfigDict(frozen=True)

    requested: int
    examples: tuple[TrainingExample, ...]
    failures: tuple[GenerationFailure, ...] = ()

    @property
    def produced(self) -> int:
        return len(self.examples)

    @property
    def shortfall(self) -> float:
        """The share of requested examples the engine did not produce (0 when it made them all)."""
        return max(0.0, 1 - self.produced / self.requested) if self.requested else 0.0


class DataGenerationEngine(Protocol):
    """Turns a plan into training examples; also proposes sub-skills for Skill-Tree explore."""

    name: str

    def generate(self, plan: DataGenerationPlan, seed: int, avoid: frozenset[str] = frozenset()) -> GenerationResult:
        """Examples for every plan entry. ``avoid``: questions it should not write (benchmark, earlier data)."""

    def propose_subskills(self, skill: str, existing: Sequence[str], count: int, seed: int) -> list[str]:
        """Up to ``count`` new sub-skills of top-level ``skill`` not in ``existing``; [] when none remain."""

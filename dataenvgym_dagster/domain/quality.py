"""Quality checks that a generated example must pass before the student trains on it."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.types import TrainingExample


class QualityVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    example_id: str
    passed: bool
    reason: str | None


def check_examples(domain: Domain, examples: Sequence[TrainingExample]) -> list[QualityVerdict]:
    """One verdict per example, in order: the answer must verify and the skill must exist."""
    skills = set(domain.taxonomy.skills)
    verdicts = []
    for example in examples:
        reason = None
        if example.skill not in skills:
            reason = f"unknown skill {example.skill!r}"
        elif not domain.verify(example.question, example.answer):
            reason = "answer does not verify"
        verdicts.append(QualityVerdict(example_id=example.example_id, passed=reason is None, reason=reason))
    return verdicts

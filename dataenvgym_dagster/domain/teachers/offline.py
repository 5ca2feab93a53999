"""The offline teacher: a data generation engine that needs no network.

It writes correct problems with answers for any skill of the domain. For plan entries that
name questions to imitate (Open-Ended), it makes new problems of the same skill.
"""

from __future__ import annotations

import hashlib
import random

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.types import TrainingExample


def entry_rng(seed: int, entry: PlanEntry) -> random.Random:
    """A generator that depends only on the seed and the entry, not on the other entries."""
    digest = hashlib.sha256(f"{seed}:{entry.entry_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class OfflineTeacher:
    """Generates training data from the domain's own problem generators."""

    name = "offline"

    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def generate(self, plan: DataGenerationPlan, seed: int) -> list[TrainingExample]:
        examples = []
        for entry in plan.entries:
            rng = entry_rng(seed, entry)
            for index in range(entry.count):
                question, answer = self.domain.sample(entry.skill, rng)
                examples.append(
                    TrainingExample(
                        example_id=f"{entry.entry_id}/{index:05d}",
                        question=question,
                        answer=answer,
                        skill=entry.skill,
                        plan_entry_id=entry.entry_id,
                    )
                )
        return examples

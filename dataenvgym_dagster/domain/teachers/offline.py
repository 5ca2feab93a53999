"""The offline teacher: a data generation engine that needs no network.

It writes correct problems with answers for any skill of the domain, from the domain's own
generators. For Open-Ended entries (``similar_to``) it writes new problems of the same skill
as the errors it imitates; for Skill-Tree explore it proposes the domain's finer skills under
a top-level skill. It avoids questions it is told to avoid (the benchmark, its own earlier
output) by rejection sampling, and leaves any repeats it cannot avoid to the quality filters.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Sequence

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.teachers.protocol import GenerationResult
from dataenvgym_dagster.domain.types import Draft, TrainingExample

NOVELTY_ATTEMPTS = 20  # draws per example before accepting a question seen before


def entry_rng(seed: int, entry: PlanEntry) -> random.Random:
    """A generator that depends only on the seed and the entry, not on the other entries."""
    digest = hashlib.sha256(f"{seed}:{entry.entry_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class OfflineTeacher:
    """Generates training data from the domain's own problem generators."""

    name = "offline"

    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def generate(self, plan: DataGenerationPlan, seed: int, avoid: frozenset[str] = frozenset()) -> GenerationResult:
        # Remembered within this call: once a skill's distinct problems are used up it is drawn up to
        # NOVELTY_ATTEMPTS times per example (8 on average in the default experiment), mostly questions
        # seen before, and parsing each again took most of generation.
        canonical = functools.cache(self.domain.canonical)
        seen = {canonical(question) for question in avoid}
        examples = []
        for entry in plan.entries:
            rng = entry_rng(seed, entry)
            for index in range(entry.count):
                draft = self._novel(entry.skill, rng, seen, canonical)
                examples.append(
                    TrainingExample(
                        example_id=f"{entry.entry_id}/{index:05d}", skill=entry.skill, plan_entry_id=entry.entry_id,
                        **draft.model_dump(),
                    )
                )
        return GenerationResult(requested=plan.total, examples=tuple(examples))

    def _novel(self, skill: str, rng: random.Random, seen: set[str], canonical: Callable[[str], str]) -> Draft:
        for _ in range(NOVELTY_ATTEMPTS):
            draft = self.domain.sample(skill, rng)
            key = canonical(draft.question)
            if key not in seen:
                seen.add(key)
                return draft
        return draft

    def propose_subskills(self, skill: str, existing: Sequence[str], count: int, seed: int) -> list[str]:
        """The domain's leaf skills under category ``skill`` that the tree does not have yet, in a seeded order."""
        candidates = [leaf for leaf in self.domain.taxonomy.categories.get(skill, ()) if leaf not in existing]
        random.Random(f"{seed}:{skill}:{len(existing)}").shuffle(candidates)
        return candidates[:count]

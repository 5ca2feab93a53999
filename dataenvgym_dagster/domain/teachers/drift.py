"""An imperfect engine: on some skills it drifts, writing problems of other skills instead.

LLM teachers do this: asked for two-digit additions with a carry, a share of what they write
are easier or other problems. The problems are correct and carry the skill the plan asked for,
so answer verification and every other quality filter keep them, and the student trains on
them; but funding a drifted skill teaches that skill little. The student's validation accuracy
on it does not move while it is funded, which an agent that reads the state can see (its
``reward`` and answer-loss progress) and a blind one cannot.

This is a change of the environment, not of the agents, and off unless the catalogue sets
``domains.<domain>.offline_drift``; without it the offline engine is used unchanged.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.teachers.protocol import DataGenerationEngine, GenerationResult

DRIFT_MARK = "~drift~"  # joins a drifted entry's id and the skill its off-skill part is written from


class EngineDrift(BaseModel):
    """Where and how much the engine drifts.

    For every plan entry of a skill in ``skills``, ``round(rate × count)`` of its examples are
    problems of a skill drawn (seeded) from ``into`` (default: every skill of the domain not in
    ``skills``), labelled with the skill the plan asked for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    skills: tuple[str, ...] = Field(min_length=1, description="The skills on which the engine drifts.")
    rate: float = Field(gt=0, le=1, description="The share of a drifted skill's examples that are problems of another skill.")
    into: tuple[str, ...] | None = Field(
        None, min_length=1,
        description="The skills the off-skill problems are drawn from; default: every skill not in `skills`.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> EngineDrift:
        if len(set(self.skills)) != len(self.skills):
            raise ValueError(f"drift skills {list(self.skills)} repeat a skill")
        overlap = sorted(set(self.skills) & set(self.into or ()))
        if overlap:
            raise ValueError(f"drift into {overlap}, which are drifted skills themselves; remove them from `into` or `skills`")
        return self

    def check(self, domain: str, skills: Sequence[str]) -> None:
        """Raise, naming the domain's skills, unless every skill named is one of ``skills`` and one is left to drift into."""
        unknown = sorted((set(self.skills) | set(self.into or ())) - set(skills))
        if unknown:
            raise ValueError(f"drift names unknown skills {unknown}; {domain}'s skills are: {', '.join(skills)}")
        if not self.sources(skills):
            raise ValueError(f"drift covers every skill of {domain}: leave at least one skill out of `skills` to drift into")

    def sources(self, skills: Sequence[str]) -> tuple[str, ...]:
        """The skills off-skill problems are written from, of the domain's ``skills``."""
        return self.into if self.into is not None else tuple(skill for skill in skills if skill not in self.skills)

    def off_skill(self, entry: PlanEntry) -> int:
        """How many of ``entry``'s examples are problems of another skill."""
        return round(self.rate * entry.count) if entry.skill in self.skills else 0

    @property
    def version(self) -> str:
        """A 12-character hash of these settings and of this module's source: part of the engine's version."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True) + Path(__file__).read_text()
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class DriftingEngine:
    """``engine`` with ``drift``: each drifted entry is split into its on-skill part and off-skill parts,
    the engine writes them all in one call, and the off-skill examples come back as the entry's own."""

    def __init__(self, engine: DataGenerationEngine, drift: EngineDrift, skills: Sequence[str]) -> None:
        self.engine = engine
        self.drift = drift
        self.name = engine.name
        self._sources = drift.sources(skills)

    def generate(self, plan: DataGenerationPlan, seed: int, avoid: frozenset[str] = frozenset()) -> GenerationResult:
        entries: list[PlanEntry] = []
        asked: dict[str, PlanEntry] = {}  # off-skill entry id -> the entry whose skill it stands in for
        for entry in plan.entries:
            off = self.drift.off_skill(entry)
            entries.append(entry.model_copy(update={"count": entry.count - off}) if off else entry)
            rng = random.Random(f"{seed}:{entry.entry_id}:drift")
            for source, count in sorted(Counter(rng.choice(self._sources) for _ in range(off)).items()):
                entry_id = f"{entry.entry_id}{DRIFT_MARK}{source}"
                entries.append(PlanEntry(entry_id=entry_id, skill=source, count=count, rationale=f"drift of {entry.entry_id}"))
                asked[entry_id] = entry
        result = self.engine.generate(plan.model_copy(update={"entries": tuple(entries)}), seed, avoid)
        written = Counter(example.plan_entry_id for example in result.examples if example.plan_entry_id not in asked)
        examples = []
        for example in result.examples:
            entry = asked.get(example.plan_entry_id)
            if entry is not None:  # numbered after the entry's on-skill examples, as the engine numbers its own
                example = example.model_copy(update={
                    "example_id": f"{entry.entry_id}/{written[entry.entry_id]:05d}", "skill": entry.skill, "plan_entry_id": entry.entry_id,
                })
                written[entry.entry_id] += 1
            examples.append(example)
        failures = tuple(
            failure.model_copy(update={"entry_id": asked[failure.entry_id].entry_id}) if failure.entry_id in asked else failure
            for failure in result.failures
        )
        return GenerationResult(requested=plan.total, examples=tuple(examples), failures=failures)

    def propose_subskills(self, skill: str, existing: Sequence[str], count: int, seed: int) -> list[str]:
        return self.engine.propose_subskills(skill, existing, count, seed)


"""Skill discovery: which skill each validation question tests, organised into categories."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, model_validator

from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Problem


class DiscoveredSkills(BaseModel):
    """A taxonomy and the skill of every validation question under it."""

    model_config = ConfigDict(frozen=True)

    discoverer: str
    taxonomy: SkillTaxonomy
    assignments: dict[str, str]  # example_id -> leaf skill

    @model_validator(mode="after")
    def _assignments_use_taxonomy_skills(self) -> DiscoveredSkills:
        unknown = sorted(set(self.assignments.values()) - set(self.taxonomy.skills))
        if unknown:
            raise ValueError(f"assignments use skills that are not in the taxonomy: {unknown}")
        return self


class SkillDiscoverer(Protocol):
    """Labels validation questions with skills and groups the skills into categories."""

    name: str

    def discover(self, domain: str, problems: Sequence[Problem], previous: DiscoveredSkills | None) -> DiscoveredSkills:
        """The taxonomy for these problems; ``previous`` is the last iteration's, to refine or keep."""


class GoldSkillDiscoverer:
    """The benchmark's own skill labels (arithmetic's generators, MATH's type × level).

    The taxonomy is the domain's gold taxonomy, extended by any labels a file benchmark carries
    beyond it (for example a LiveCodeBench platform the procedural source does not know).
    """

    name = "gold"

    def __init__(self, taxonomy: SkillTaxonomy) -> None:
        self.taxonomy = taxonomy

    def discover(self, domain: str, problems: Sequence[Problem], previous: DiscoveredSkills | None) -> DiscoveredSkills:
        known = set(self.taxonomy.skills)
        extra = sorted({p.skill for p in problems} - known)
        taxonomy = self.taxonomy
        if extra:
            categories = {category: list(skills) for category, skills in self.taxonomy.categories.items()}
            for skill in extra:
                categories.setdefault(skill.split("/", 1)[0], []).append(skill)
            taxonomy = SkillTaxonomy(domain=self.taxonomy.domain, categories={c: tuple(s) for c, s in categories.items()})
        return DiscoveredSkills(discoverer=self.name, taxonomy=taxonomy, assignments={p.example_id: p.skill for p in problems})


def skill_mapping(previous: DiscoveredSkills, current: DiscoveredSkills) -> list[tuple[str, str | None, float]]:
    """Where each old skill went: (old skill, new skill most of its questions moved to, share).

    The new skill is ``None`` when none of the old skill's questions are assigned any more.
    """
    mapping = []
    for old in previous.taxonomy.skills:
        moved = Counter(
            current.assignments.get(example_id)
            for example_id, skill in previous.assignments.items()
            if skill == old
        )
        total = sum(moved.values())
        new, count = moved.most_common(1)[0] if moved else (None, 0)
        mapping.append((old, new, count / total if total else 0.0))
    return mapping

"""Skill taxonomies: categories of leaf skills, with a stable order."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class SkillTaxonomy(BaseModel):
    """Categories and their leaf skills. Leaf skills are named ``category/skill``."""

    model_config = ConfigDict(frozen=True)

    domain: str
    categories: dict[str, tuple[str, ...]]

    @model_validator(mode="after")
    def _leaves_are_prefixed_by_their_category(self) -> SkillTaxonomy:
        for category, skills in self.categories.items():
            for skill in skills:
                if not skill.startswith(f"{category}/"):
                    raise ValueError(f"skill {skill!r} must be named '{category}/<name>'")
        return self

    @property
    def skills(self) -> tuple[str, ...]:
        """All leaf skills, category by category."""
        return tuple(skill for skills in self.categories.values() for skill in skills)

    def category_of(self, skill: str) -> str:
        category = skill.split("/", 1)[0]
        if skill not in self.categories.get(category, ()):
            raise KeyError(f"skill {skill!r} is not in the {self.domain} taxonomy; known: {', '.join(self.skills)}")
        return category

"""What every domain implements, and the registry of domains the loop can run."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Protocol

from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Problem


class Domain(Protocol):
    """A benchmark with gold skill labels, the student's text format, and answer checking."""

    name: str
    taxonomy: SkillTaxonomy

    def sample(self, skill: str, rng: random.Random) -> tuple[str, str]:
        """One (question, answer) for a leaf skill."""

    def benchmark_splits(self, per_skill: Mapping[str, int], seed: int) -> dict[str, list[Problem]]:
        """Fixed, disjoint splits stratified by skill."""

    def prompt(self, question: str) -> str:
        """The text the student is asked to continue."""

    def target(self, answer: str) -> str:
        """The continuation the student is trained to write."""

    def parse(self, completion: str) -> str:
        """The student's completion as an answer comparable with the reference."""

    def verify(self, question: str, answer: str) -> bool:
        """Whether ``answer`` correctly answers ``question``."""

    def canonical(self, question: str) -> str:
        """A key equal for near-duplicate questions (same problem, different surface form)."""


def get_domain(name: str) -> Domain:
    """The registered domain called ``name``."""
    from dataenvgym_dagster.domain.arithmetic import ARITHMETIC

    domains: dict[str, Domain] = {ARITHMETIC.name: ARITHMETIC}
    try:
        return domains[name]
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; available domains: {', '.join(sorted(domains))}") from None

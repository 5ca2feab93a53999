"""Helpers every domain's benchmark sources share: procedural splits, stratified sampling, reading text files."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dataenvgym_dagster.domain.errors import read_utf8_text
from dataenvgym_dagster.domain.protocol import BenchmarkFormatError, BenchmarkSpec
from dataenvgym_dagster.domain.types import Problem

if TYPE_CHECKING:
    from dataenvgym_dagster.domain.protocol import Domain

def read_utf8(path: Path, what: str) -> str:
    """A benchmark file's text (see :func:`read_utf8_text`); problems raise :class:`BenchmarkFormatError`."""
    return read_utf8_text(path, what, BenchmarkFormatError, "the published files are UTF-8")


MAX_DRAWS = 10_000  # per problem, before a skill is declared too small for the requested split


class ProceduralSource:
    """Disjoint validation and test splits drawn from the domain's own generators, stratified by skill.

    No question appears twice within or across splits (exact text; near duplicates of the
    benchmark are the quality filters' concern).
    """

    name = "procedural"
    needs_path = False

    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        per_skill = {"validation": spec.validation_per_skill, "test": spec.test_per_skill or spec.validation_per_skill}
        rng = random.Random(spec.seed)
        seen: set[str] = set()
        splits: dict[str, list[Problem]] = {split: [] for split in per_skill}
        for skill in self.domain.taxonomy.skills:
            for split, count in per_skill.items():
                for index in range(count):
                    draft = self._unseen(skill, rng, seen)
                    splits[split].append(
                        Problem(example_id=f"{split}/{skill}/{index:04d}", skill=skill, **draft.model_dump())
                    )
        return splits

    def _unseen(self, skill: str, rng: random.Random, seen: set[str]):
        for _ in range(MAX_DRAWS):
            draft = self.domain.sample(skill, rng)
            if draft.question not in seen:
                seen.add(draft.question)
                return draft
        raise ValueError(f"{self.domain.name} skill {skill} has too few distinct problems for the requested split sizes")


def stratified_sample(
    problems: Sequence[Problem], per_cell: int, seed: int, cell: Callable[[Problem], str] = lambda p: p.skill
) -> list[Problem]:
    """Up to ``per_cell`` problems of each cell (default: each skill), seeded, in a stable order."""
    by_cell: dict[str, list[Problem]] = {}
    for problem in sorted(problems, key=lambda p: p.example_id):
        by_cell.setdefault(cell(problem), []).append(problem)
    rng = random.Random(seed)
    chosen: list[Problem] = []
    for key in sorted(by_cell):
        members = by_cell[key]
        chosen += sorted(rng.sample(members, min(per_cell, len(members))), key=lambda p: p.example_id)
    return chosen

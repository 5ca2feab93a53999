"""What every domain implements: benchmarks, the student's format, scoring and generators.

A domain is one package under ``dataenvgym_dagster/domain/`` with an object satisfying
:class:`Domain`, registered by name in :mod:`dataenvgym_dagster.domain.registry`. The loop
never compares answers itself: it asks the domain to score completions and to verify
generated examples.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.skills import SkillTaxonomy
from dataenvgym_dagster.domain.types import Draft, Problem, Score, StudentText

SPLITS = ("validation", "test")


class BenchmarkSpec(BaseModel):
    """Which benchmark source a domain loads, from where, and how its splits are drawn.

    ``validation_per_skill`` and ``test_per_skill`` are per gold skill (per stratification cell
    for file sources); ``test_per_skill: null`` keeps every test problem a file source has.
    ``options`` are the source's own settings (for example LiveCodeBench releases).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field("procedural", description="A source the domain registers; every domain has 'procedural'.")
    path: str | None = Field(None, description="File or folder of a file source; relative paths are from the working directory.")
    validation_per_skill: int = Field(40, gt=0)
    test_per_skill: int | None = Field(40, gt=0)
    seed: int = 0
    options: dict[str, Any] = Field(default_factory=dict)


class BenchmarkSource(Protocol):
    """Loads (or generates) a domain's validation and test problems."""

    name: str
    needs_path: bool

    def load(self, spec: BenchmarkSpec) -> dict[str, list[Problem]]:
        """``{"validation": [...], "test": [...]}`` with stable example ids and gold skills.

        A missing or malformed file raises :class:`BenchmarkFormatError` naming the path and
        the expected layout; no row is ever dropped silently.
        """


class BenchmarkFormatError(ValueError):
    """A benchmark file is missing or not in the layout its source expects."""


class GeneratedItem(BaseModel):
    """The default shape of one teacher-written problem: a question and its answer."""

    question: str = Field(description="The question exactly as the student sees it.")
    answer: str = Field(description="The correct answer, exactly and only.")


class Domain(Protocol):
    """A task family: benchmarks, skills, the student's text format, scoring and data generators."""

    name: str
    taxonomy: SkillTaxonomy
    """Gold skills of the procedural source (and of file benchmarks whose labels coincide)."""
    brief: str
    """What the LLM teacher must know to write this domain's problems (no other domain's wording)."""
    sources: Mapping[str, BenchmarkSource]
    """Benchmark sources by name; ``procedural`` needs nothing from outside."""
    generated_item: type[BaseModel]
    """The JSON shape the LLM teacher writes one problem in (structured output)."""

    def sample(self, skill: str, rng: random.Random) -> Draft:
        """One procedural problem of a leaf skill: the offline teacher's and pretraining's generator."""

    def draft(self, item: BaseModel) -> Draft:
        """A teacher-written item (an instance of ``generated_item``) as a draft problem."""

    def student_text(self, problem: Problem) -> StudentText:
        """The prompt the student reads and the target it is trained to write."""

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """Each completion judged against its problem's reference, in order (batched; may use processes)."""

    def verify(self, problems: Sequence[Problem]) -> list[bool]:
        """Whether each problem's own answer (and payload) is correct: the ``wrong_answer`` filter."""

    def canonical(self, question: str) -> str:
        """A key equal for near-duplicate questions (same problem, different surface form)."""


@runtime_checkable
class WorkedSolutions(Protocol):
    """A domain whose student can be trained on worked solutions (``student.target: solution``).

    ``solution_text`` gives the same prompt as ``student_text`` with a worked solution that ends
    in the answer as the target (the answer alone where a problem has no worked solution);
    ``solution_item`` is the shape the LLM teacher writes a problem in when solutions are needed.
    """

    solution_item: type[BaseModel]

    def solution_text(self, problem: Problem) -> StudentText:
        """The prompt and, as the target, a worked solution ending in the answer."""

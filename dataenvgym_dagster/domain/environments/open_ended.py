"""The Open-Ended environment: the state is the list of evaluated validation examples.

There is no skill structure for the policy to use: it chooses examples (errors, with the
student's answer and the reference) and asks the engine for new examples like them. Each
example's benchmark label travels with it only as a hint for an engine that needs one (the
offline engine imitates an example with the generator of its skill); policies never read it.
"""

from __future__ import annotations

import math
from typing import ClassVar

from dataenvgym_dagster.domain.environments.base import (
    EnvironmentState,
    Observation,
    PolicyContext,
    PolicySpec,
    allocate,
    make_plan,
)
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry, PolicyAction, SimilarExample
from dataenvgym_dagster.domain.types import EvaluationRecord

NAME = "open_ended"
MAX_SEEDS = 96  # examples imitated per iteration; each becomes one plan entry


class OpenEndedState(EnvironmentState):
    """Every validation example of ``evaluated_iteration`` with the student's answer."""

    examples: tuple[EvaluationRecord, ...]

    @property
    def errors(self) -> tuple[EvaluationRecord, ...]:
        return tuple(record for record in self.examples if not record.correct)

    def warehouse_rows(self) -> list[dict[str, object]]:
        return [
            self.row(
                NAME, kind="example", node=record.example_id, parent=None, n=1, accuracy=float(record.correct),
                answer_loss=record.answer_loss, previous_accuracy=None, allocation=None, generated_so_far=None,
            )
            for record in self.examples
        ]

    def render(self) -> str:
        lines = [
            self.header(NAME),
            f"{len(self.examples)} validation examples, {len(self.errors)} answered wrongly. Errors "
            "(id, skill label, question, reference answer, student's answer, answer loss):",
        ]
        lines += [
            f"- {r.example_id} [{r.skill}] Q: {r.question!r} reference: {r.reference!r} student: {r.prediction!r} "
            f"loss {r.answer_loss:.2f}"
            for r in self.errors
        ]
        return "\n".join(lines)


def observe(observation: Observation) -> OpenEndedState:
    return OpenEndedState(
        domain=observation.domain,
        experiment=observation.experiment,
        iteration=observation.iteration,
        evaluated_iteration=observation.iteration - 1,
        examples=tuple(observation.validation),
    )


def _weighted_sample(items: list[EvaluationRecord], weights: list[float], k: int, rng) -> list[EvaluationRecord]:
    """``k`` items without replacement, each draw in proportion to weight (Efraimidis–Spirakis keys)."""
    keyed = sorted(zip(items, weights, strict=True), key=lambda pair: -(rng.random() ** (1 / pair[1])))
    return [item for item, _ in keyed[:k]]


def _plan(
    state: OpenEndedState, policy: str, chosen: list[EvaluationRecord], budget: int, rationale, show_answers: bool,
    weights: dict[str, float] | None = None,
) -> DataGenerationPlan:
    counts = allocate(budget, weights or {record.example_id: 1.0 for record in chosen})
    entries = [
        PlanEntry(
            entry_id=f"iteration_{state.iteration}/{record.example_id}",
            skill=record.skill,
            count=counts[record.example_id],
            rationale=rationale(record),
            similar_to=(
                SimilarExample(
                    example_id=record.example_id, question=record.question, reference=record.reference,
                    prediction=record.prediction if show_answers else "",
                    verdict=record.verdict if show_answers else "",
                ),
            ),
        )
        for record in chosen
    ]
    actions = [
        PolicyAction(
            skill=record.example_id, action="select", reward=None, observed_accuracy=float(record.correct),
            detail={"answer_loss": round(record.answer_loss, 4), "count": counts[record.example_id]},
        )
        for record in chosen
    ]
    return make_plan(state, NAME, policy, entries, actions)


def near_misses_policy(state: OpenEndedState, context: PolicyContext, temperature: float = 0.5) -> DataGenerationPlan:
    """Imitate errors, favouring near misses: an error is drawn with weight ``exp(-answer_loss / temperature)``.

    An error whose reference answer the student already finds likely (low loss) is one it is
    close to learning; an error it finds very unlikely is often beyond it for now.
    """
    errors = list(state.errors)
    if not errors:  # nothing wrong: keep the student sharp on what it was least sure of
        errors = sorted(state.examples, key=lambda record: -record.answer_loss)[:MAX_SEEDS]
    weights = [math.exp(-record.answer_loss / temperature) + 1e-9 for record in errors]
    chosen = _weighted_sample(errors, weights, min(MAX_SEEDS, len(errors)), context.rng(f"near_misses:{state.iteration}"))
    # Chosen errors also share the budget by weight, with a floor so that none gets nothing.
    by_id = {record.example_id: weight for record, weight in zip(errors, weights, strict=True)}
    top = max(by_id[record.example_id] for record in chosen)
    shares = {record.example_id: max(by_id[record.example_id], 0.1 * top) for record in chosen}
    return _plan(
        state, "near_misses", chosen, context.budget,
        lambda r: f"wrong answer {r.prediction!r} (reference {r.reference!r}), answer loss {r.answer_loss:.2f}",
        show_answers=True, weights=shares,
    )


def errors_policy(state: OpenEndedState, context: PolicyContext) -> DataGenerationPlan:
    """Imitate errors drawn uniformly, as the paper's baseline agent does."""
    errors = list(state.errors) or list(state.examples)
    chosen = context.rng(f"errors:{state.iteration}").sample(errors, min(MAX_SEEDS, len(errors)))
    return _plan(state, "errors", chosen, context.budget, lambda r: f"wrong answer {r.prediction!r} (reference {r.reference!r})", show_answers=True)


def no_state_policy(state: OpenEndedState, context: PolicyContext) -> DataGenerationPlan:
    """Imitate validation questions drawn at random, without seeing whether the student got them right."""
    chosen = context.rng(f"no_state:{state.iteration}").sample(list(state.examples), min(MAX_SEEDS, len(state.examples)))
    return _plan(state, "no_state", chosen, context.budget, lambda r: "drawn at random; the policy does not see the student's answers", show_answers=False)


class OpenEndedEnvironment:
    name = NAME
    state_type = OpenEndedState
    observe = staticmethod(observe)
    actions: ClassVar[dict[str, str]] = {
        "select": "choose a validation example (the action's skill is its example id) to imitate (detail: count)",
    }
    policies: ClassVar[dict[str, PolicySpec]] = {
        "near_misses": PolicySpec(near_misses_policy, True, "errors, favouring those with low answer loss"),
        "errors": PolicySpec(errors_policy, True, "errors drawn uniformly"),
        "no_state": PolicySpec(no_state_policy, False, "validation questions drawn at random"),
    }

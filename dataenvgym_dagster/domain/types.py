"""The loop's vocabulary: problems, scores, evaluation records and training examples."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _json_object(value: Any) -> Any:
    """Payloads travel through Parquet as JSON text; in Python they are dicts."""
    if value is None or value == "" or value == "{}":  # most rows have no payload: no JSON to parse
        return {}
    if isinstance(value, str):
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise ValueError(f"payload must be a JSON object, got {type(parsed).__name__}")
        return parsed
    return value


class Draft(BaseModel):
    """A problem as a generator or teacher writes it, before it has an id or a skill label.

    ``answer`` is the short reference that scoring compares with (a number, a boxed expression,
    the tool names of a plan). ``payload`` carries what else the domain needs (a worked solution,
    unit tests, an image path, a plan), as JSON-ready values.
    """

    model_config = ConfigDict(frozen=True)

    question: str
    answer: str
    payload: dict[str, Any] = Field(default_factory=dict)

    _payload = field_validator("payload", mode="before")(_json_object)


class Problem(Draft):
    """One benchmark or generated task with its stable id and gold skill label.

    ``skill`` is a leaf of the domain's skill taxonomy, written ``category/skill``. In the
    warehouse, ``payload`` is a JSON text column.
    """

    example_id: str
    skill: str

    def payload_json(self) -> str:
        # Most problems have none, and json.dumps of {} was a third of writing a row.
        return json.dumps(self.payload, sort_keys=True) if self.payload else "{}"

    def warehouse_row(self) -> dict[str, Any]:
        """The problem's columns as stored in ``benchmark_problems`` / ``generated_examples``."""
        return {**self.model_dump(exclude={"payload"}), "payload": self.payload_json()}

    @staticmethod
    def draft_row(draft: Draft, *, example_id: str, skill: str) -> dict[str, Any]:
        """``Problem(example_id=..., skill=..., **draft.model_dump()).warehouse_row()``, without building the
        Problem: the draft is validated already. Building and dumping one per row was most of making the
        20 000-row pretraining corpus (140 → 60 ms)."""
        payload = json.dumps(draft.payload, sort_keys=True) if draft.payload else "{}"
        return {"question": draft.question, "answer": draft.answer, "example_id": example_id, "skill": skill, "payload": payload}


class TrainingExample(Problem):
    """A generated training example and the plan entry that asked for it."""

    plan_entry_id: str = Field(description="The data generation plan entry that asked for it.")


class StudentText(BaseModel):
    """What the student reads (``prompt``) and is trained to write (``target``) for one problem.

    ``images`` are paths of images the prompt refers to (visual question answering); empty for
    text-only domains.
    """

    model_config = ConfigDict(frozen=True)

    prompt: str
    target: str
    images: tuple[str, ...] = ()


class Score(BaseModel):
    """A domain's judgement of one completion: a value in [0, 1], the answer it read, and why.

    ``metrics`` holds any further per-example figures a domain reports (tool F1, pass counts),
    stored as JSON in ``evaluation_results.metrics``.
    """

    model_config = ConfigDict(frozen=True)

    value: float = Field(ge=0.0, le=1.0)
    extracted: str = Field(description="The answer extracted from the completion, as compared.")
    verdict: str = Field(description="A short explanation: 'correct', 'wrong answer', the failing test, 'timeout' ...")
    metrics: dict[str, float] = Field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.value >= 1.0


class EvaluationRecord(BaseModel):
    """The student's answer to one problem, as the domain scored it."""

    model_config = ConfigDict(frozen=True)

    example_id: str
    skill: str
    question: str
    reference: str
    prediction: str = Field(description="The answer the domain extracted from the student's completion.")
    correct: bool
    score: float = 1.0
    verdict: str = ""
    answer_loss: float = Field(description="Mean cross-entropy (nats/token) of the reference target.")

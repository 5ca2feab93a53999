"""The loop's vocabulary: problems, evaluation records, skills and training examples."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One benchmark or generated task with its gold skill label.

    ``skill`` is a leaf of the domain's skill taxonomy, written ``category/skill``.
    """

    model_config = ConfigDict(frozen=True)

    example_id: str
    question: str
    answer: str
    skill: str


class EvaluationRecord(BaseModel):
    """The student's answer to one problem, scored by exact match."""

    model_config = ConfigDict(frozen=True)

    example_id: str
    skill: str
    question: str
    reference: str
    prediction: str
    correct: bool
    answer_loss: float = Field(description="Mean cross-entropy (nats/token) of the reference answer.")


class TrainingExample(BaseModel):
    """A generated training example and where it came from."""

    model_config = ConfigDict(frozen=True)

    example_id: str
    question: str
    answer: str
    skill: str
    plan_entry_id: str = Field(description="The data generation plan entry that asked for it.")

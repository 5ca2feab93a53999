"""What every environment observes about a skill, and how learnable that makes it.

The paper and our own prototype agree that the largest gains come from skills of medium
difficulty: a policy that always feeds the weakest skill spends its budget on skills the
student cannot learn yet. :func:`learnability` therefore weighs a skill by how much there is
left to learn *and* how close the student is to learning it: the middle of the accuracy range,
and answer loss that is already falling, count for more than a low accuracy alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, computed_field

from dataenvgym_dagster.domain.types import EvaluationRecord


class SkillPerformance(BaseModel):
    """The student's validation performance on one skill, and on the previous evaluation."""

    model_config = ConfigDict(frozen=True)

    skill: str
    n: int
    n_correct: int
    answer_loss: float
    previous_accuracy: float | None = None
    previous_answer_loss: float | None = None

    # Computed fields: serialised (JSON, schema) like stored ones, so an agent reading JSON sees them too.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def accuracy(self) -> float:
        """Validation accuracy in [0, 1]: ``n_correct / n`` (0 when ``n`` is 0)."""
        return self.n_correct / self.n if self.n else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reward(self) -> float | None:
        """Change in validation accuracy since the previous evaluation (None on the first)."""
        return None if self.previous_accuracy is None else self.accuracy - self.previous_accuracy

    @property
    def loss_progress(self) -> float:
        """Relative fall in answer loss since the previous evaluation, 0 when it rose or is unknown."""
        if not self.previous_answer_loss:
            return 0.0
        return max(0.0, (self.previous_answer_loss - self.answer_loss) / self.previous_answer_loss)


def summarise(
    skill: str, records: Sequence[EvaluationRecord], previous: SkillPerformance | None = None
) -> SkillPerformance:
    """One skill's performance over ``records`` (which may be empty), linked to ``previous``."""
    return SkillPerformance(
        skill=skill,
        n=len(records),
        n_correct=sum(record.correct for record in records),
        answer_loss=sum(record.answer_loss for record in records) / len(records) if records else 0.0,
        previous_accuracy=previous.accuracy if previous and previous.n else None,
        previous_answer_loss=previous.answer_loss if previous and previous.n else None,
    )


def group_by_skill(skills: Iterable[str], records: Sequence[EvaluationRecord]) -> dict[str, list[EvaluationRecord]]:
    """Records per skill, every skill present; a record of an unknown skill is an error."""
    grouped: dict[str, list[EvaluationRecord]] = {skill: [] for skill in skills}
    for record in records:
        if record.skill not in grouped:
            raise ValueError(
                f"validation example {record.example_id} has skill {record.skill!r}, which is not in the "
                "iteration's skill taxonomy; re-materialise skill_taxonomy for this iteration"
            )
        grouped[record.skill].append(record)
    return grouped


def learnability(performance: SkillPerformance, floor: float = 0.02) -> float:
    """A weight in (0, ~2]: room to improve × closeness to learning, plus recent progress.

    * room to improve: ``1 - p`` with ``p`` the smoothed accuracy ``(correct + 1) / (n + 2)``;
    * closeness: ``4 p (1 - p)``, 1 at 50 % accuracy and near 0 for skills far from learnt or
      mastered (the zone of proximal development);
    * progress: twice the relative fall in answer loss since the last evaluation (capped at 1),
      so a skill whose loss is falling keeps its data even before its accuracy moves.

    ``floor`` keeps a little data on every skill so that none is forgotten.
    """
    p = (performance.n_correct + 1) / (performance.n + 2)
    closeness = 4 * p * (1 - p)
    progress = min(1.0, 2 * performance.loss_progress)
    return floor + (1 - p) * (closeness + progress)


def describe(performance: SkillPerformance) -> str:
    """One line of a state's text rendering: accuracy, counts, and the change since last time."""
    p = performance
    text = f"accuracy {p.accuracy:.0%} ({p.n_correct}/{p.n}), answer loss {p.answer_loss:.2f}"
    if p.reward is not None:
        text += f", {p.reward:+.0%} since the previous evaluation"
    return text

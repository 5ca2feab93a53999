"""Quality filters a generated example must pass before the student trains on it.

Filters run in order and an example is rejected by the first that fails, so the counts per
reason add up to the number rejected:

1. ``unknown_skill``: the example's skill is not one the plan asked for;
2. ``undecodable_image`` / ``blank_image`` (examples with an image): the image file is missing or
   does not decode, or every channel spans fewer than a few levels (nothing to see);
3. ``wrong_answer``: the domain's checker does not accept the answer;
4. ``benchmark_overlap``: the question equals a test question (always), or is a near duplicate of
   a validation or test question (``exclude_benchmark``, the default);
5. ``duplicate_image``: an earlier example of this dataset has an image with the same perceptual
   hash (the file's, so re-encoded or resized copies count), unless ``deduplicate: off``;
6. ``duplicate``: an earlier example had the same question or the same canonical form (a near
   duplicate): within this iteration's dataset (``deduplicate: iteration``, the default) or also
   across the experiment's earlier iterations (``deduplicate: experiment``);
7. ``already_solved``: optional, the current student already answers it correctly.

Image facts (decodes? blank? perceptual hash?) are read from the files by the machinery
(:func:`dataenvgym_dagster.machinery.images.inspect_images`) and passed in as :class:`ImageCheck`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.domain.protocol import Domain
from dataenvgym_dagster.domain.types import TrainingExample

REASONS = (
    "unknown_skill", "undecodable_image", "blank_image", "wrong_answer", "benchmark_overlap", "duplicate_image", "duplicate",
    "already_solved",
)
IMAGE_REJECTIONS = ("undecodable_image", "blank_image")


class QualitySettings(BaseModel):
    """Which filters run. Answer verification always runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deduplicate: Literal["off", "iteration", "experiment"] = Field(
        "iteration",
        description="Drop exact and near-duplicate questions within the iteration's dataset, or also against "
        "earlier iterations' data. Small problem spaces (one-digit sums) run dry under 'experiment'.",
    )
    exclude_benchmark: bool = Field(
        True, description="Drop questions that nearly equal a validation or test question; exact test questions are always dropped."
    )
    drop_solved: bool = Field(False, description="Drop examples the current student already answers correctly.")

    def earlier_to_avoid(self, earlier_questions: Collection[str]) -> Collection[str]:
        """The earlier iterations' questions that count as duplicates: all of them only across the experiment."""
        return earlier_questions if self.deduplicate == "experiment" else ()


DEFAULT_QUALITY = QualitySettings()


class ImageCheck(BaseModel):
    """What an example's image file is: why it cannot teach (``undecodable_image``, ``blank_image``) or None,
    and its perceptual hash (None if it does not decode)."""

    model_config = ConfigDict(frozen=True)

    rejection: Literal["undecodable_image", "blank_image"] | None = None
    key: str | None = None
    detail: str = ""


class QualityVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    example_id: str
    passed: bool
    reason: str | None


def check_examples(
    domain: Domain,
    examples: Sequence[TrainingExample],
    *,
    planned_skills: Collection[str],
    settings: QualitySettings = DEFAULT_QUALITY,
    benchmark_questions: Collection[str] = (),
    test_questions: Collection[str] = (),
    earlier_questions: Collection[str] = (),
    solved: Mapping[str, bool] | None = None,
    images: Mapping[str, ImageCheck] | None = None,
) -> list[QualityVerdict]:
    """One verdict per example, in order.

    ``solved`` maps example ids to whether the current student answers them correctly; it is
    consulted only when ``settings.drop_solved`` is on and must then cover every example.
    ``images`` maps the ids of examples that have an image to what its file is.
    """
    images = images or {}
    benchmark = {domain.canonical(question) for question in benchmark_questions} if settings.exclude_benchmark else set()
    test = set(test_questions)
    earlier = settings.earlier_to_avoid(earlier_questions)
    seen_exact = set(earlier)
    seen_near = {domain.canonical(question) for question in earlier}
    planned = set(planned_skills)
    # The domain verifies in one batch (it may run code or a solver in worker processes).
    to_verify = [example for example in examples if example.skill in planned]
    verified = dict(zip((e.example_id for e in to_verify), domain.verify(to_verify), strict=True))
    seen_images: set[str] = set()
    verdicts = []
    for example in examples:
        canonical = domain.canonical(example.question)
        image = images.get(example.example_id)
        reason = None
        if example.skill not in planned:
            reason = "unknown_skill"
        elif image is not None and image.rejection is not None:
            reason = image.rejection
        elif not verified[example.example_id]:
            reason = "wrong_answer"
        elif example.question in test or canonical in benchmark:
            reason = "benchmark_overlap"
        elif settings.deduplicate != "off" and image is not None and image.key in seen_images:
            reason = "duplicate_image"
        elif settings.deduplicate != "off" and (example.question in seen_exact or canonical in seen_near):
            reason = "duplicate"
        elif settings.drop_solved:
            if solved is None or example.example_id not in solved:
                raise ValueError(f"drop_solved is on but the student's answer to {example.example_id} is unknown")
            reason = "already_solved" if solved[example.example_id] else None
        seen_exact.add(example.question)
        seen_near.add(canonical)
        if image is not None and image.key is not None:
            seen_images.add(image.key)
        verdicts.append(QualityVerdict(example_id=example.example_id, passed=reason is None, reason=reason))
    return verdicts


def kept_test_questions(questions: Iterable[str], test_questions: Collection[str]) -> list[str]:
    """Kept training questions that are test questions: must be empty before the student trains."""
    test = set(test_questions)
    return [question for question in questions if question in test]

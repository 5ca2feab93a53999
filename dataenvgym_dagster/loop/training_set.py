"""Which examples the student trains on in an iteration, for each training recipe."""

from __future__ import annotations

import polars as pl

from dataenvgym_dagster.experiments.config import StudentTrainingSettings, TrainingRecipe

COLUMNS = ["example_id", "question", "answer", "skill", "payload"]


def compose_training_set(
    settings: StudentTrainingSettings,
    targeted: pl.DataFrame,
    earlier_generated: list[pl.DataFrame],
    pretraining: pl.DataFrame,
    seed: int,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The iteration's training rows (example_id, question, answer, skill, payload), shuffled, and a count per source.

    * ``retrain_from_base``: every generated example that passed quality checks, this
      iteration's and all earlier ones (the DataEnvGym paper's recipe).
    * ``continue_with_replay``: this iteration's examples plus replay drawn evenly across skills
      from the pretraining corpus and earlier generated data, so that ``replay_fraction`` of the
      set is replay. Training on targeted data alone made earlier skills collapse.
    """
    passed = [frame.filter(pl.col("passed_quality_checks")).select(COLUMNS) for frame in [targeted, *earlier_generated]]
    if settings.recipe is TrainingRecipe.retrain_from_base:
        combined = pl.concat(passed)
        sources = {"this_iteration": passed[0].height, "earlier_iterations": combined.height - passed[0].height}
    else:
        replay_count = round(passed[0].height * settings.replay_fraction / (1 - settings.replay_fraction))
        replay = _balanced_sample(pl.concat([pretraining.select(COLUMNS), *passed[1:]]), replay_count, seed)
        combined = pl.concat([passed[0], replay])
        sources = {"this_iteration": passed[0].height, "replay": replay.height}
    return combined.sample(fraction=1.0, shuffle=True, seed=seed), sources


def _balanced_sample(pool: pl.DataFrame, count: int, seed: int) -> pl.DataFrame:
    """``count`` rows with (as near as possible) the same number per skill, with replacement."""
    if count == 0 or pool.is_empty():
        return pool.clear()
    skills = sorted(pool["skill"].unique())
    per_skill = [count // len(skills) + (index < count % len(skills)) for index in range(len(skills))]
    samples = [
        pool.filter(pl.col("skill") == skill).sample(n=n, with_replacement=True, seed=seed + index)
        for index, (skill, n) in enumerate(zip(skills, per_skill, strict=True))
        if n
    ]
    return pl.concat(samples)

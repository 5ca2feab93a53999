"""Asset metadata that a user wants at a glance in the UI."""

from __future__ import annotations

from typing import Any

import polars as pl
from dagster import MetadataValue

from dataenvgym_dagster.machinery.student.evaluation import GenerationReport
from dataenvgym_dagster.machinery.student.training import TrainingReport


def markdown_table(frame: pl.DataFrame) -> MetadataValue:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(value) for value in row) + " |" for row in frame.iter_rows())
    return MetadataValue.md(header + body)


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def evaluation_metadata(results: pl.DataFrame, report: GenerationReport) -> dict[str, Any]:
    per_skill = (
        results.group_by("skill", maintain_order=True)
        .agg(n=pl.len(), accuracy=pl.col("correct").mean(), answer_loss=pl.col("answer_loss").mean())
    )
    return {
        "examples": len(results),
        "accuracy": float(results["correct"].mean()),
        "answer_loss": float(results["answer_loss"].mean()),
        "examples_per_second": report.prompts_per_second,
        "per_skill": markdown_table(per_skill),
        "checkpoint_sha256": results["checkpoint_sha256"][0],
    }


def training_metadata(report: TrainingReport) -> dict[str, Any]:
    return {
        "examples": report.examples,
        "steps": report.steps,
        "tokens": report.tokens,
        "train_seconds": report.seconds,
        "tokens_per_second": report.tokens_per_second,
        "final_loss": report.final_loss,
        "loss_curve": markdown_table(pl.DataFrame(report.loss_curve, schema=["step", "loss"], orient="row")),
    }


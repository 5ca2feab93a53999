"""Asset metadata that a user wants at a glance in the UI."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import polars as pl
from dagster import MetadataValue
from PIL import Image

from dataenvgym_dagster.domain.teachers.protocol import GenerationResult
from dataenvgym_dagster.machinery.plots import accuracy_thumbnail_png, learning_curves_png
from dataenvgym_dagster.machinery.student.evaluation import GenerationReport
from dataenvgym_dagster.machinery.storage import replace_file
from dataenvgym_dagster.machinery.student.training import TrainingReport
from dataenvgym_dagster.machinery.warehouse import Warehouse


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



def generation_metadata(frame: pl.DataFrame, result: GenerationResult) -> dict[str, Any]:
    """Requested vs produced vs kept, why examples were rejected, and a preview."""
    rejected = frame.filter(~pl.col("passed_quality_checks")).group_by("rejection_reason").len().sort("rejection_reason")
    return {
        "requested": result.requested,
        "produced": result.produced,
        "shortfall": result.shortfall,
        "passed_quality_checks": int(frame["passed_quality_checks"].sum()),
        "rejected": markdown_table(rejected.rename({"len": "examples"})),
        "generation_failures": len(result.failures),
        # Each failed call or unusable item, with the reason the engine gave: never only a count.
        **({"generation_failure_reasons": markdown_table(pl.DataFrame(
            [{"entry_id": f.entry_id, "missing": f.missing, "reason": f.reason} for f in result.failures]
        ))} if result.failures else {}),
        "per_skill": markdown_table(
            frame.group_by("skill", maintain_order=True).agg(produced=pl.len(), kept=pl.col("passed_quality_checks").sum())
        ),
        "preview": markdown_table(frame.head(5).select("example_id", "question", "answer", "skill")),
    }


def learning_curve_metadata(warehouse: Warehouse, results: pl.DataFrame, folder: Path) -> dict[str, Any]:
    """A per-skill learning-curve PNG up to this evaluation: shown inline in the UI and saved under ``folder``."""
    domain, experiment, iteration = results["domain"][0], results["experiment"][0], int(results["iteration"][0])
    with warehouse.connect() as connection:
        earlier = connection.sql(
            """SELECT iteration, skill, avg(correct::INTEGER) AS accuracy FROM evaluation_results
               WHERE domain = ? AND experiment = ? AND split = 'test' AND iteration < ? GROUP BY ALL""",
            params=[domain, experiment, iteration],
        ).pl()
    current = results.group_by("iteration", "skill").agg(accuracy=pl.col("correct").cast(pl.Float64).mean())
    curves = pl.concat([earlier.cast({"iteration": pl.Int64}), current.cast({"iteration": pl.Int64})])
    png = learning_curves_png(curves, f"{domain} | {experiment}: test accuracy per skill")
    path = folder / domain / experiment / f"learning_curves_iteration_{iteration}.png"
    replace_file(path, png)  # a reader (or a full disk) never leaves half an image
    return {
        # The UI shows markdown of under 1000 characters inline and longer markdown (the full PNG)
        # behind a "[Show Markdown]" link, so the curves also come as a small plot and as text
        # sparklines, both short enough to show inline.
        "learning_curve": MetadataValue.md(learning_curve_thumbnail(curves)),
        "learning_curves_at_a_glance": MetadataValue.md(sparklines(curves)),
        "learning_curves": MetadataValue.md(f"![learning curves](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "learning_curves_png": MetadataValue.path(str(path)),
    }


def damaged_plots(home: Path) -> list[str]:
    """One line per learning-curve PNG under ``<home>/plots`` that does not decode, with what to re-materialise."""
    damaged = []
    for path in sorted((home / "plots").glob("*/*/learning_curves_iteration_*.png")):
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as error:  # noqa: BLE001 - PIL raises several types for a damaged file
            domain, experiment = path.parent.parent.name, path.parent.name
            iteration = path.stem.rsplit("_", 1)[1]
            damaged.append(
                f"{path} (learning curves) is damaged ({str(error).splitlines()[0]}). Re-materialise "
                f"iteration_{iteration}_test_evaluation for partition {domain}|{experiment}, or delete the file"
            )
    return damaged


SPARK_LEVELS = "▁▂▃▄▅▆▇█"
INLINE_MARKDOWN_LIMIT = 1000  # characters; longer markdown metadata is hidden behind a link in the UI


def learning_curve_thumbnail(curves: pl.DataFrame, limit: int = INLINE_MARKDOWN_LIMIT) -> str:
    """Mean test accuracy over skills by iteration as a small inline plot with its first and last
    value in words; the plot narrows (fewer pixels per iteration) until the markdown fits ``limit``."""
    mean = curves.group_by("iteration").agg(pl.col("accuracy").mean()).sort("iteration")
    values, iterations = mean["accuracy"].to_list(), mean["iteration"].to_list()
    caption = (
        f"mean test accuracy over skills, iteration {iterations[0]}: {100 * values[0]:.1f} % → "
        f"iteration {iterations[-1]}: {100 * values[-1]:.1f} %"
    )
    for width in (240, 180, 120, 80):
        png = base64.b64encode(accuracy_thumbnail_png(values, width=width)).decode()
        text = f"![mean test accuracy by iteration](data:image/png;base64,{png})\n\n{caption}"
        if len(text) < limit:
            return text
    return caption


def sparklines(curves: pl.DataFrame, limit: int = INLINE_MARKDOWN_LIMIT) -> str:
    """Per-skill test accuracy by iteration as one text sparkline per skill (``▁`` 0 % … ``█`` 100 %),
    short enough (under ``limit`` characters) for the UI to show inline; the earliest iterations are
    dropped first if it is not."""
    table = curves.sort("iteration").group_by("skill", maintain_order=True).agg(pl.col("accuracy"), pl.col("iteration"))
    iterations = sorted(curves["iteration"].unique().to_list())
    for start in range(len(iterations)):
        shown = set(iterations[start:])
        lines = []
        for skill, accuracy, iteration in table.sort("skill").iter_rows():
            values = [a for a, t in zip(accuracy, iteration, strict=True) if t in shown]
            spark = "".join(SPARK_LEVELS[min(len(SPARK_LEVELS) - 1, int(a * len(SPARK_LEVELS)))] for a in values)
            lines.append(f"{spark} {100 * values[0]:.0f}→{100 * values[-1]:.0f}% {skill}")
        text = f"test accuracy, iterations {min(shown)}–{max(shown)}:\n```\n" + "\n".join(lines) + "\n```"
        if len(text) < limit:
            return text
    return text[: limit - 4] + "\n```"

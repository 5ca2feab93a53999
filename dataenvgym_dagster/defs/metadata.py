"""Asset metadata that a user wants at a glance in the UI."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import duckdb
import polars as pl
from dagster import MetadataValue
from PIL import Image

from dataenvgym_dagster.domain.teachers.protocol import GenerationResult
from dataenvgym_dagster.machinery.plots import accuracy_thumbnail_png, learning_curves_svg
from dataenvgym_dagster.machinery.storage import replace_file
from dataenvgym_dagster.machinery.student.backend import GenerationReport, TrainingReport
from dataenvgym_dagster.machinery.warehouse import Warehouse


def markdown_table(frame: pl.DataFrame, percent: Sequence[str] = ()) -> MetadataValue:
    """``frame`` as a Markdown table that fits the UI's metadata column: headers with spaces (so they
    wrap), fractions in the ``percent`` columns as ``46.5 %``, other floats to three decimals."""
    header = "| " + " | ".join(column.replace("_", " ") for column in frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    body = "\n".join(
        "| " + " | ".join(_cell(value, column in percent) for column, value in zip(frame.columns, row, strict=True)) + " |"
        for row in frame.iter_rows()
    )
    return MetadataValue.md(header + body)


def _cell(value: Any, as_percent: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return percent(value) if as_percent else f"{value:.3f}"
    return str(value)


def percent(fraction: float, digits: int = 1) -> str:
    """``0.4646`` as ``46.5 %``."""
    return f"{100 * fraction:.{digits}f} %"


def quantity(value: float, unit: str) -> str:
    """A rate or amount rounded for reading, with its unit: ``1,560 examples/s``, ``0.412 nats/token``."""
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 3
    return f"{value:,.{digits}f} {unit}"


def duration(seconds: float) -> str:
    """``12.3 s``, or ``3 min 05 s`` from a minute on."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def evaluation_metadata(results: pl.DataFrame, report: GenerationReport) -> dict[str, Any]:
    # Three columns fit the UI's metadata value column at 1440 px with long skill names; a fourth was cut
    # off. Per-skill answer loss is in `dataenvgym run`'s second table and the skill_accuracy view.
    per_skill = results.group_by("skill", maintain_order=True).agg(n=pl.len(), accuracy=pl.col("correct").mean())
    right = int(results["correct"].sum())
    return {
        "accuracy": MetadataValue.text(f"{percent(right / len(results))} ({right} of {len(results)} right)"),
        "examples": len(results),
        "answer_loss": MetadataValue.text(quantity(float(results["answer_loss"].mean()), "nats/token")),
        "evaluation_speed": MetadataValue.text(
            f"{quantity(report.prompts_per_second, 'examples/s')} ({duration(report.seconds)})"
        ),
        "evaluation_seconds": round(report.seconds, 2),  # a number, for plots and benchmarks/stage_timings.py
        "per_skill": markdown_table(per_skill, percent=["accuracy"]),
        # A prefix: the full 64 hex digits widened the UI's value column past the window, clipping the
        # per-skill table (the full hash is in evaluation_results.checkpoint_sha256 and the checkpoint's sha256).
        "checkpoint_sha256": f"{results['checkpoint_sha256'][0][:16]}…",
    }


def training_metadata(report: TrainingReport) -> dict[str, Any]:
    every = max(1, -(-len(report.loss_curve) // 10))  # at most ten points of the curve, and the last one
    curve = report.loss_curve[::every] + ([report.loss_curve[-1]] if (len(report.loss_curve) - 1) % every else [])
    return {
        "examples": report.examples,
        "steps": report.steps,
        "tokens": report.tokens,
        "training_time": MetadataValue.text(duration(report.seconds)),
        "train_seconds": round(report.seconds, 2),  # a number, for plots and benchmarks/stage_timings.py (as precise as evaluation_seconds)
        "training_speed": MetadataValue.text(quantity(report.tokens_per_second, "tokens/s")),
        "final_loss": MetadataValue.text(quantity(report.final_loss, "nats/token")),
        "loss_curve": markdown_table(pl.DataFrame(curve, schema=["step", "loss"], orient="row")),
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


PLOT_STEM = "learning_curves_iteration_"  # plots/<domain>/<experiment>/<stem><iteration>.svg


def test_accuracy_per_skill(connection: duckdb.DuckDBPyConnection, domain: str, experiment: str, before: int) -> pl.DataFrame:
    """(iteration, skill, accuracy) of the experiment's test evaluations before iteration ``before``, from the connection's views."""
    return connection.sql(
        """SELECT iteration, skill, avg(correct::INTEGER) AS accuracy FROM evaluation_results
           WHERE domain = ? AND experiment = ? AND split = 'test' AND iteration < ? GROUP BY ALL""",
        params=[domain, experiment, before],
    ).pl()


def learning_curve_metadata(warehouse: Warehouse, results: pl.DataFrame, folder: Path) -> dict[str, Any]:
    """A per-skill learning-curve plot up to this evaluation: shown in the UI and saved as SVG under ``folder``."""
    domain, experiment, iteration = results["domain"][0], results["experiment"][0], int(results["iteration"][0])
    # This experiment's evaluations alone: 17 ms, where the whole table's view took 370 ms in a home of 150 experiments.
    with warehouse.connect(tables=["evaluation_results"], under=[domain, experiment]) as connection:
        earlier = test_accuracy_per_skill(connection, domain, experiment, before=iteration)
    current = results.group_by("iteration", "skill").agg(accuracy=pl.col("correct").cast(pl.Float64).mean())
    curves = pl.concat([earlier.cast({"iteration": pl.Int64}), current.cast({"iteration": pl.Int64})])
    svg = learning_curves_svg(
        curves, width=820, height=430, title=f"{domain} | {experiment}: test accuracy per skill", legend=True
    ).encode()
    path = folder / domain / experiment / f"{PLOT_STEM}{iteration}.svg"
    replace_file(path, svg)  # a reader (or a full disk) never leaves half a plot
    path.with_suffix(".png").unlink(missing_ok=True)  # what versions before 2026-12-07 drew for this evaluation
    return {
        # The UI shows markdown of under 1000 characters inline and longer markdown (the full plot)
        # behind a "[Show Markdown]" link, so the curves also come as a small plot and as text
        # sparklines, both short enough to show inline.
        "learning_curve": MetadataValue.md(learning_curve_thumbnail(curves)),
        "learning_curves_at_a_glance": MetadataValue.md(sparklines(curves)),
        "learning_curves": MetadataValue.md(f"![learning curves](data:image/svg+xml;base64,{base64.b64encode(svg).decode()})"),
        # No path entry: an absolute path (80+ characters) widened the value column past the window,
        # clipping the tables beside it; the plot's place is documented (plots/<domain>/<experiment>/).
    }


def damaged_plots(home: Path) -> list[str]:
    """One line per learning-curve plot under ``<home>/plots`` that does not parse (SVG) or decode
    (the PNG of earlier versions), with what to re-materialise."""
    damaged = []
    for path in sorted((home / "plots").glob(f"*/*/{PLOT_STEM}*")):
        if path.suffix not in (".svg", ".png"):
            continue
        try:
            if path.suffix == ".svg":
                if ElementTree.parse(path).getroot().tag != "{http://www.w3.org/2000/svg}svg":
                    raise ValueError("not an SVG document")
            else:
                with Image.open(path) as image:
                    image.load()
        except Exception as error:  # noqa: BLE001 - the XML parser and PIL raise several types for a damaged file
            domain, experiment = path.parent.parent.name, path.parent.name
            iteration = path.stem.removeprefix(PLOT_STEM)
            damaged.append(
                f"{path} (learning curves) is damaged ({str(error).splitlines()[0]}). Re-materialise "
                f"iteration_{iteration}_test_evaluation for partition {domain}|{experiment}, or delete the file"
            )
    return damaged


SPARK_LEVELS = "▁▂▃▄▅▆▇█"
INLINE_MARKDOWN_LIMIT = 1000  # characters; longer markdown metadata is hidden behind a link in the UI


def learning_curve_thumbnail(curves: pl.DataFrame, limit: int = INLINE_MARKDOWN_LIMIT) -> str:
    """Mean test accuracy over skills by iteration as a small inline plot with labelled axes, and a
    short caption with its first and last value; a narrower plot if the markdown would not fit ``limit``."""
    mean = curves.group_by("iteration").agg(pl.col("accuracy").mean()).sort("iteration")
    values, iterations = mean["accuracy"].to_list(), mean["iteration"].to_list()
    caption = f"mean test accuracy: {percent(values[0])}"
    caption += f" → {percent(values[-1])} (iterations {iterations[0]}–{iterations[-1]})" if len(values) > 1 else f" (iteration {iterations[0]})"
    for width in (280, 220, 160, 120):
        png = base64.b64encode(accuracy_thumbnail_png(values, iterations, width=width)).decode()
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

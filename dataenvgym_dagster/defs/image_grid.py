"""A grid of example images with question, answer and prediction, shown in an asset's metadata (visual domains)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
from dagster import MetadataValue
from PIL import Image, ImageDraw

from dataenvgym_dagster.domain.vqa.images import ImageStore, split_tag

CELL = 128  # pixels per example image in the grid
CAPTION = 40  # pixels of text under each image
COLUMNS = 4


def _grid_png(rows: list[dict[str, Any]], home: Path) -> bytes:
    store = ImageStore(home)
    height = (len(rows) + COLUMNS - 1) // COLUMNS
    grid = Image.new("RGB", (COLUMNS * CELL, height * (CELL + CAPTION)), "white")
    draw = ImageDraw.Draw(grid)
    for index, row in enumerate(rows):
        x, y = index % COLUMNS * CELL, index // COLUMNS * (CELL + CAPTION)
        grid.paste(store.open(row["payload"]).resize((CELL, CELL)), (x, y))
        _, question = split_tag(row["question"])
        lines = [question[:26], question[26:52], f"answer: {row['answer']}" + (f" | said: {row['prediction']}" if "prediction" in row else "")]
        colour = "black" if row.get("correct", True) else "firebrick"
        for line_number, line in enumerate(lines):
            draw.text((x + 2, y + CELL + 1 + 12 * line_number), line[:30], fill=colour)
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    return buffer.getvalue()


def _markdown(png: bytes, title: str) -> MetadataValue:
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def dataset_grid(frame: pl.DataFrame, home: Path, count: int = 8) -> dict[str, Any]:
    """The first ``count`` kept examples of a generated dataset: what the student is taught."""
    kept = frame.filter(pl.col("passed_quality_checks")).head(count)
    rows = [{**row, "payload": json.loads(row["payload"])} for row in kept.select("question", "answer", "payload").iter_rows(named=True)]
    return {"example_images": _markdown(_grid_png(rows, home), "generated examples")} if rows else {}


def evaluation_grid(results: pl.DataFrame, benchmark: pl.DataFrame, home: Path, count: int = 8) -> dict[str, Any]:
    """Up to ``count`` evaluated examples, errors first (in red): where the student fails."""
    joined = (
        results.select("example_id", "question", "prediction", "correct", answer="reference")
        .join(benchmark.select("example_id", "payload"), on="example_id", how="left")
        .sort("correct", "example_id")
        .head(count)
    )
    rows = [{**row, "payload": json.loads(row["payload"])} for row in joined.iter_rows(named=True)]
    return {"example_images": _markdown(_grid_png(rows, home), "evaluated examples")} if rows else {}

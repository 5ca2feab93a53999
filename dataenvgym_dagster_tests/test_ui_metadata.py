"""Asset metadata reads at a glance: rounded numbers with units or percent, tables that fit, a curve with axes."""

import base64
import io
import re

import polars as pl
from PIL import Image

from dataenvgym_dagster.defs.metadata import (
    INLINE_MARKDOWN_LIMIT,
    duration,
    evaluation_metadata,
    learning_curve_thumbnail,
    markdown_table,
    quantity,
    training_metadata,
)
from dataenvgym_dagster.machinery.student.backend import GenerationReport, TrainingReport

from .test_warehouse import evaluation_rows


def test_evaluation_metadata_says_accuracy_in_percent_with_counts_and_speed_with_its_unit():
    report = GenerationReport(prompts=480, seconds=0.3077, prompts_per_second=1559.5677587779585)
    metadata = evaluation_metadata(evaluation_rows(4), report)
    assert metadata["accuracy"].value == "50.0 % (2 of 4 right)"
    assert metadata["answer_loss"].value == "0.100 nats/token"
    assert metadata["evaluation_speed"].value == "1,560 examples/s (0.3 s)"
    assert metadata["evaluation_seconds"] == 0.31  # a number too, rounded, for plots and benchmarks
    assert metadata["per_skill"].value.splitlines() == ["| skill | n | accuracy |", "|---|---|---|", "| a/b | 4 | 50.0 % |"]


def test_training_metadata_rounds_and_keeps_about_ten_points_of_the_loss_curve():
    curve = [(step, 2.0 / step) for step in range(1, 38)]
    report = TrainingReport(examples=96, steps=37, tokens=12_345, seconds=75.2, tokens_per_second=164.16, final_loss=0.05405, loss_curve=curve)
    metadata = training_metadata(report)
    assert (metadata["training_time"].value, metadata["training_speed"].value, metadata["final_loss"].value) == (
        "1 min 15 s", "164 tokens/s", "0.054 nats/token"
    )
    rows = metadata["loss_curve"].value.splitlines()[2:]
    assert len(rows) <= 11 and rows[0] == "| 1 | 2.000 |" and rows[-1] == "| 37 | 0.054 |"


def test_numbers_are_rounded_to_what_a_reader_compares():
    assert [quantity(v, "x/s") for v in (1559.56, 12.345, 0.41234)] == ["1,560 x/s", "12.3 x/s", "0.412 x/s"]
    assert [duration(s) for s in (0.31, 59.94, 61, 3725)] == ["0.3 s", "59.9 s", "1 min 01 s", "62 min 05 s"]


def test_table_headers_wrap_and_fractions_in_percent_columns_read_as_percent():
    table = markdown_table(pl.DataFrame({"previous_accuracy": [0.25, None], "answer_loss": [1.23456, 2.0]}), percent=["previous_accuracy"])
    assert table.value.splitlines() == ["| previous accuracy | answer loss |", "|---|---|", "| 25.0 % | 1.235 |", "|  | 2.000 |"]


def test_the_inline_learning_curve_is_a_labelled_plot_the_ui_shows_without_a_click():
    curves = pl.DataFrame({
        "iteration": [t for t in range(4) for _ in range(2)], "skill": ["a", "b"] * 4,
        "accuracy": [0.1, 0.3, 0.2, 0.3, 0.3, 0.35, 0.45, 0.48],
    })
    text = learning_curve_thumbnail(curves)
    assert len(text) < INLINE_MARKDOWN_LIMIT  # longer markdown hides behind "[Show Markdown]"
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", text).group(1)
    image = Image.open(io.BytesIO(base64.b64decode(png)))
    assert image.size == (280, 110)  # room for the y axis in percent and the iterations under the x axis
    assert text.endswith("mean test accuracy: 20.0 % → 46.5 % (iterations 0–3)")

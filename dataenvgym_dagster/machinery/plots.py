"""Plots as PNG bytes, for asset metadata and for files beside the warehouse."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: runs happen in workers and CI

import matplotlib.pyplot as plt
import polars as pl
from PIL import Image, ImageDraw


def learning_curves_png(accuracy: pl.DataFrame, title: str) -> bytes:
    """Per-skill accuracy (%) by iteration, one line per skill and a bold mean line.

    ``accuracy`` has columns ``iteration``, ``skill`` and ``accuracy`` (a fraction).
    """
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        colours = plt.get_cmap("tab20").colors  # 20 distinct colours: skills rarely share one
        for index, (skill, rows) in enumerate(sorted(accuracy.sort("iteration").group_by("skill"), key=lambda item: item[0][0])):
            axes.plot(
                rows["iteration"], rows["accuracy"] * 100, marker="o", linewidth=1, markersize=3,
                color=colours[index % len(colours)], label=skill[0],
            )
        mean = accuracy.group_by("iteration").agg(pl.col("accuracy").mean()).sort("iteration")
        axes.plot(mean["iteration"], mean["accuracy"] * 100, color="black", linewidth=3, label="mean over skills")
        axes.set(title=title, xlabel="iteration", ylabel="test accuracy (%)", ylim=(-2, 102))
        axes.set_xticks(sorted(accuracy["iteration"].unique().to_list()))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def accuracy_thumbnail_png(accuracy: list[float], width: int = 240, height: int = 72) -> bytes:
    """A small line plot of accuracy (fractions, one per iteration) on a 0/50/100 % grid.

    Four palette colours and no text keep it to a few hundred bytes, so that it fits in markdown
    the UI shows inline (under 1000 characters, base64 included).
    """
    image = Image.new("P", (width, height), 0)
    image.putpalette([255, 255, 255, 225, 225, 225, 170, 170, 170, 31, 119, 180])  # white, grid, axis, line
    draw = ImageDraw.Draw(image)
    pad = 4

    def y(fraction: float) -> float:
        return pad + (1 - fraction) * (height - 2 * pad)

    for fraction in (0.5, 1.0):
        draw.line([(pad, y(fraction)), (width - pad, y(fraction))], fill=1)
    draw.line([(pad, y(0.0)), (width - pad, y(0.0))], fill=2)
    step = (width - 2 * pad) / max(len(accuracy) - 1, 1)
    points = [(pad + index * step, y(value)) for index, value in enumerate(accuracy)]
    if len(points) > 1:
        draw.line(points, fill=3, width=2)
    for x, top in points:
        draw.ellipse([x - 2, top - 2, x + 2, top + 2], fill=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, bits=2)
    return buffer.getvalue()

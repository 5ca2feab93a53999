"""Plots as PNG bytes, for asset metadata and for files beside the warehouse."""

from __future__ import annotations

import io

import matplotlib
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # not pyplot: no global figure state, nothing to close, no display needed
from PIL import Image, ImageDraw, ImageFont


def learning_curves_png(accuracy: pl.DataFrame, title: str) -> bytes:
    """Per-skill accuracy (%) by iteration, one line per skill and a bold mean line.

    ``accuracy`` has columns ``iteration``, ``skill`` and ``accuracy`` (a fraction).
    """
    figure = Figure(figsize=(8, 4.5), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = matplotlib.colormaps["tab20"].colors  # 20 distinct colours: skills rarely share one
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
    legend = axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    # Room on the right for the legend, measured; the other margins fit the fixed labels. tight_layout
    # measured every artist for the same result and was a third of the plot's time.
    legend_width = legend.get_window_extent(canvas.get_renderer()).width / figure.bbox.width
    figure.subplots_adjust(left=0.08, bottom=0.11, top=0.93, right=max(0.5, 0.97 - legend_width))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def accuracy_thumbnail_png(accuracy: list[float], iterations: list[int] | None = None, width: int = 280, height: int = 110) -> bytes:
    """A small line plot of accuracy (fractions, one per iteration) with its axes labelled: test
    accuracy 0/50/100 % on the y axis, the iterations on the x axis.

    Four palette colours and a bitmap font keep it to several hundred bytes, so that it fits in
    markdown the UI shows inline (under 1000 characters, base64 included).
    """
    iterations = list(range(len(accuracy))) if iterations is None else iterations
    image = Image.new("P", (width, height), 0)
    image.putpalette([255, 255, 255, 225, 225, 225, 90, 90, 90, 31, 119, 180])  # white, grid, axis and text, line
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # no anti-aliasing: the four colours stay four
    font = ImageFont.load_default()
    left, right, top, bottom = 34, 10, 6, 26  # room for the y labels, the last point, the x labels and title

    def y(fraction: float) -> float:
        return top + (1 - fraction) * (height - top - bottom)

    def x(index: int) -> float:
        return left + index * (width - left - right) / max(len(accuracy) - 1, 1)

    for fraction, label in ((0.0, "0%"), (0.5, "50%"), (1.0, "100%")):
        draw.line([(left, y(fraction)), (width - right, y(fraction))], fill=2 if fraction == 0 else 1)
        draw.text((left - 4, y(fraction)), label, fill=2, font=font, anchor="rm")
    every = -(-len(iterations) // 8)  # at most 8 labelled ticks, the last one always
    for index, iteration in enumerate(iterations):
        if index % every and index != len(iterations) - 1:
            continue
        draw.line([(x(index), y(0)), (x(index), y(0) + 3)], fill=2)
        draw.text((x(index), y(0) + 4), str(iteration), fill=2, font=font, anchor="mt")
    draw.text(((left + width - right) / 2, height - 1), "iteration", fill=2, font=font, anchor="mb")
    points = [(x(index), y(value)) for index, value in enumerate(accuracy)]
    many = len(points) > 12  # a thin line without dots: fewer bytes, and dots would merge anyway
    if len(points) > 1:
        draw.line(points, fill=3, width=1 if many else 2)
    for px, py in [] if many else points:
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, bits=2)
    return buffer.getvalue()

"""Plots as PNG bytes, for asset metadata and for files beside the warehouse."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: runs happen in workers and CI

import matplotlib.pyplot as plt
import polars as pl


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

"""Learning-curve plots: SVG text for asset metadata, files and the leaderboard page, and a small
PNG thumbnail that fits in the markdown the Dagster UI shows inline.

SVG because a line plot is a handful of elements: drawing one takes about a millisecond, where
matplotlib took 0.15 s per plot plus 0.4 s to import, the largest cost of the default run outside
training and evaluation (docs/performance.md). Text stays text (sharp at any zoom, selectable).
"""

from __future__ import annotations

import io
import re
from html import escape

import polars as pl
from PIL import Image, ImageDraw, ImageFont

# matplotlib's "tab10" colours; the 11th to 20th skill reuse them dashed, the next ten dotted.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
DASHES = ("", "6 3", "1.5 2.5")
MARKERS_UP_TO = 12  # iterations; beyond that the points would merge into the line


def skill_style(index: int) -> tuple[str, str]:
    """The colour and dash pattern ("" for solid) of the ``index``-th skill in alphabetical order."""
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE)) % len(DASHES)]


def learning_curves_svg(
    curves: pl.DataFrame, width: int = 340, height: int = 190, *, title: str | None = None, legend: bool = False
) -> str:
    """Test accuracy (%) per skill by iteration (thin lines, one style per skill in alphabetical
    order, see :func:`skill_style`) and their mean (thick black), as an SVG document.

    ``curves`` has columns ``iteration``, ``skill`` and ``accuracy`` (a fraction). With ``title``
    and ``legend`` the plot also has axis titles and a legend on the right naming each line (the
    SVG grows taller when the skills need more rows than ``height`` holds).
    """
    curves = curves.filter(pl.col("accuracy").cast(pl.Float64).is_not_nan())  # no point to draw (a filter drops nulls too)
    skills = sorted(curves["skill"].unique().to_list())
    iterations = sorted(curves["iteration"].unique().to_list()) or [0]
    labelled = legend or title is not None
    row = 16  # legend row height
    if legend:
        height = max(height, 40 + row * (len(skills) + 1))
    left, top = (52 if labelled else 34), (30 if title is not None else 8)
    right, bottom = (250 if legend else 12 if labelled else 8), (40 if labelled else 22)
    first, last = iterations[0], iterations[-1]

    def x(iteration: int) -> float:
        if first == last:  # one iteration so far: its points in the middle
            return (left + width - right) / 2
        return left + (width - left - right) * (iteration - first) / (last - first)

    def y(accuracy: float) -> float:
        return top + (height - top - bottom) * (1 - accuracy)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
    ]
    if title is not None:
        out.append(f'<text x="{(left + width - right) / 2:.1f}" y="18" font-size="13" text-anchor="middle">{_text(title)}</text>')
    for tick in (0, 0.25, 0.5, 0.75, 1) if labelled else (0, 0.5, 1):
        stroke = "#999" if tick == 0 and labelled else "#eee"
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{stroke}"/>')
        out.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{int(tick * 100)}</text>')
    every = -(-len(iterations) // 12)  # at most 12 labelled ticks, the last one always
    for index, iteration in enumerate(iterations):
        if index % every and index != len(iterations) - 1:
            continue
        label = str(iteration) if labelled else f"it{iteration}"
        out.append(f'<text x="{x(iteration):.1f}" y="{height - bottom + 16}" font-size="10" text-anchor="middle">{label}</text>')
    if labelled:
        out.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 8}" text-anchor="middle">iteration</text>')
        middle = (top + height - bottom) / 2
        out.append(f'<text x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">test accuracy (%)</text>')
    markers = len(iterations) <= MARKERS_UP_TO
    lines = {skill: curves.filter(pl.col("skill") == skill).sort("iteration") for skill in skills}
    for index, skill in enumerate(skills):
        colour, dash = skill_style(index)
        points = [(x(i), y(a)) for i, a in zip(lines[skill]["iteration"], lines[skill]["accuracy"], strict=True)]
        out.append(_line(points, colour, dash, 1.2, skill, markers, 2.2))
    if not curves.is_empty():
        mean = curves.group_by("iteration").agg(pl.col("accuracy").mean()).sort("iteration")
        points = [(x(i), y(a)) for i, a in zip(mean["iteration"], mean["accuracy"], strict=True)]
        out.append(_line(points, "#000", "", 2.5, "mean over skills", markers, 3.2, css_class="mean"))
    if legend:
        x0 = width - right + 14
        for index, name in enumerate([*skills, "mean over skills"]):
            colour, dash = skill_style(index) if index < len(skills) else ("#000", "")
            weight = 2.5 if index == len(skills) else 1.5
            y0 = top + 6 + index * row
            dashing = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{x0}" x2="{x0 + 22}" y1="{y0}" y2="{y0}" stroke="{colour}" stroke-width="{weight}"{dashing}/>')
            shown = name if len(name) <= 30 else name[:29] + "…"
            out.append(f'<text x="{x0 + 28}" y="{y0 + 4}">{_text(shown)}<title>{_text(name)}</title></text>')
    out.append("</svg>")
    return "".join(out)


def _text(value: str) -> str:
    """``value`` as XML text: escaped, and the control characters XML cannot hold shown as U+FFFD."""
    return escape(_CONTROL.sub("\ufffd", value))


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _line(
    points: list[tuple[float, float]], colour: str, dash: str, width: float, name: str, markers: bool, radius: float,
    css_class: str | None = None,
) -> str:
    """One named polyline, with a dot on each point when ``markers`` (and always for a single point)."""
    dashing = f' stroke-dasharray="{dash}"' if dash else ""
    attribute = f' class="{css_class}"' if css_class else ""
    coordinates = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    parts = [
        f'<g><title>{_text(name)}</title>'
        f'<polyline{attribute} fill="none" stroke="{colour}" stroke-width="{width}"{dashing} points="{coordinates}"/>'
    ]
    if markers or len(points) == 1:
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{radius}" fill="{colour}"/>' for px, py in points]
    parts.append("</g>")
    return "".join(parts)


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

"""The leaderboard of agents, read from the warehouse's ``leaderboard`` view, as Markdown, CSV or one HTML page.

Rows are ranked together only when they are comparable (same test split content, student,
budget, iterations, seeds and engine drift, see :mod:`~dataenvgym_dagster.machinery.leaderboard_views`). In
each domain the comparable group with the most rows is ranked; every other row is listed apart
with what differs from the ranked group.
"""

from __future__ import annotations

import html
from collections.abc import Collection
from dataclasses import dataclass

import polars as pl

from dataenvgym_dagster.machinery.leaderboard_views import LEADERBOARD_RUNS, leaderboard_sql
from dataenvgym_dagster.machinery.plots import learning_curves_svg, skill_style
from dataenvgym_dagster.machinery.warehouse import Warehouse, sql_string

# What must match for rows to be ranked together, as (column, how a person reads it).
COMPARABILITY = (
    ("split_hash", "test split"), ("student", "student"), ("data_budget", "budget"), ("iterations", "iterations"), ("seed_list", "seeds"),
    ("engine_drift", "engine"),  # an imperfect (drifting) offline engine changes the environment
)
ROW_KEY = ("domain", "environment", "agent", "agent_version", "engine", "student", "data_budget", "iterations", "split_hash")


@dataclass(frozen=True)
class Leaderboard:
    """``ranked``: per domain, the rows of its main comparable group, by rank; ``apart``: the others, with
    ``differs``; ``curves``: per row key, skill and iteration, the test accuracy averaged over seeds."""

    ranked: pl.DataFrame
    apart: pl.DataFrame
    curves: pl.DataFrame

    @property
    def rows(self) -> pl.DataFrame:
        """Every row, ranked ones first, with ``listed`` ('ranked' or 'apart') and ``differs``."""
        return pl.concat([self.ranked.with_columns(listed=pl.lit("ranked")), self.apart.with_columns(listed=pl.lit("apart"))], how="diagonal_relaxed")


def load(warehouse: Warehouse, experiment_names: Collection[str] | None = None) -> Leaderboard:
    """The leaderboard of every finished run, or only of runs of the experiments named (e.g. a suite's)."""
    runs = "leaderboard_runs"
    if experiment_names is not None:
        names = ", ".join(map(sql_string, experiment_names)) or "NULL"
        runs = f"(SELECT * FROM ({LEADERBOARD_RUNS}) WHERE experiment_name IN ({names}))"
    with warehouse.connect() as connection:
        rows = connection.sql(leaderboard_sql(runs)).pl()
        curves = connection.sql(
            f"""SELECT {', '.join('r.' + c for c in ROW_KEY)}, s.skill, s.iteration, avg(s.accuracy) AS accuracy
                FROM {runs} r JOIN skill_accuracy s ON s.domain = r.domain AND s.experiment = r.experiment AND s.split = 'test'
                WHERE s.iteration <= r.iterations GROUP BY ALL ORDER BY ALL"""
        ).pl()
    if rows.is_empty():
        which = "" if experiment_names is None else " of these experiments"
        raise LookupError(f"the warehouse under {warehouse.home} has no finished runs{which} (a test evaluation after iteration 0)")
    ranked, apart = split_comparable(rows)
    return Leaderboard(ranked, apart, curves)


def split_comparable(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per domain, the main comparable group (most rows, then most seeds) and the other rows with ``differs``."""
    ranked, apart = [], []
    for (domain,), group in rows.group_by("domain", maintain_order=True):
        sizes = group.group_by("comparable_key").agg(pl.len().alias("rows"), pl.col("seeds").max()).sort(
            ["rows", "seeds", "comparable_key"], descending=[True, True, False]
        )
        main = sizes["comparable_key"][0]
        ranked.append(group.filter(pl.col("comparable_key") == main).sort("rank", "environment", "agent"))
        others = group.filter(pl.col("comparable_key") != main)
        if not others.is_empty():
            reference = group.filter(pl.col("comparable_key") == main).row(0, named=True)
            apart.append(others.with_columns(differs=pl.Series([_differs(row, reference) for row in others.iter_rows(named=True)], dtype=pl.String)))
    empty = rows.head(0)
    ranked_frame = pl.concat(ranked) if ranked else empty
    apart_frame = pl.concat(apart) if apart else empty.with_columns(differs=pl.lit(None, dtype=pl.String))
    return ranked_frame, apart_frame


def _differs(row: dict, reference: dict) -> str:
    """What makes ``row`` incomparable with the ranked rows of its domain, e.g. 'budget 2000 (ranked: 8000)'."""
    parts = []
    for column, label in COMPARABILITY:
        if row[column] != reference[column]:
            mine, theirs = row[column], reference[column]
            if column == "split_hash":
                mine, theirs = str(mine)[:8], str(theirs)[:8]
            if column == "engine_drift":
                mine, theirs = mine or "without drift", theirs or "without drift"
            parts.append(f"{label} {mine} (ranked: {theirs})")
    return "; ".join(parts)


# -- formats --------------------------------------------------------------------------------------
def _points(value: float | None, sign: bool = True) -> str:
    return "" if value is None else f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _interval(mean: float | None, low: float | None, high: float | None) -> str:
    """'+3.1 [+1.0, +5.2]' in points; no brackets without an interval (one seed); ▲/▼ when it excludes 0."""
    if mean is None:
        return ""
    if low is None or high is None:
        return _points(mean)
    mark = " ▲" if low > 0 else " ▼" if high < 0 else ""
    return f"{_points(mean)} [{_points(low)}, {_points(high)}]{mark}"


def _cells(row: dict) -> dict[str, str]:
    """A row as the text a person reads, by column heading."""
    versus = ""
    if row["vs_blind"] is not None:
        versus = f"{_interval(row['vs_blind'], row['vs_blind_ci_low'], row['vs_blind_ci_high'])} vs {row['best_blind']}"
    elif row["best_blind"] is not None and row["best_blind"] == row["agent"]:
        versus = "(the best blind baseline)"
    per_point = row["cost_usd_per_point"]
    return {
        "rank": "" if row.get("listed") == "apart" else str(row["rank"]),
        "domain": row["domain"],
        "environment": row["environment"],
        "agent": row["agent"],
        "version": row["agent_version"],
        "state": "reads" if row["uses_state"] else "blind",
        "engine": row["engine"],
        "student": row["student"],
        "seeds": f"{row['seeds']} ({row['seed_list']})",
        "base %": _points(row["base_accuracy"], sign=False),
        "final %": _points(row["final_accuracy"], sign=False),
        "gain [95 % CI]": _interval(row["gain"], row["gain_ci_low"], row["gain_ci_high"]),
        "vs best blind [95 % CI]": versus,
        "teacher tokens": f"{row['teacher_tokens']:.0f}",
        "$ / point": "" if per_point is None else "0" if per_point == 0 else f"{per_point:.4f}",
        "examples kept": f"{row['examples_kept']:.0f}",
        "training s": f"{row['training_seconds']:.0f}",
        "budget": str(row["data_budget"]),
        "iterations": str(row["iterations"]),
        "differs": row.get("differs") or "",
    }


RANKED_COLUMNS = (
    "rank", "domain", "environment", "agent", "version", "state", "engine", "seeds", "base %", "final %", "gain [95 % CI]",
    "vs best blind [95 % CI]", "teacher tokens", "$ / point", "examples kept", "training s",
)
APART_COLUMNS = ("domain", "environment", "agent", "version", "state", "engine", "seeds", "base %", "final %", "gain [95 % CI]", "differs")
LEGEND = (
    "Accuracies and gains in points (percent). Intervals: 95 % Student-t over seeds (no interval with one seed); "
    "▲/▼: the interval lies above/below 0. vs best blind: gain minus the best blind baseline's gain (same domain, "
    "environment, engine, budget, split, student, iterations), paired by seed. Teacher tokens, examples kept and "
    "training seconds are per run."
)


def _groups_note(board: Leaderboard) -> list[str]:
    notes = []
    for (domain,), group in board.ranked.group_by("domain", maintain_order=True):
        row = group.row(0, named=True)
        notes.append(
            f"{domain}: ranked together: test split {row['split_hash'][:8]} ({len(group)} rows), student {row['student']}, "
            f"budget {row['data_budget']}, {row['iterations']} iterations, seeds {row['seed_list']}"
        )
    return notes


def markdown(board: Leaderboard) -> str:
    """The ranked rows, then the rows listed apart, as Markdown tables with a legend."""
    lines = [*(f"- {note}" for note in _groups_note(board)), ""]
    lines += _markdown_table(board.ranked, RANKED_COLUMNS)
    if not board.apart.is_empty():
        lines += ["", "Not comparable with the ranked rows (listed apart):", ""]
        lines += _markdown_table(board.apart.with_columns(listed=pl.lit("apart")), APART_COLUMNS)
    lines += ["", LEGEND]
    return "\n".join(lines)


def _markdown_table(rows: pl.DataFrame, columns: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows.iter_rows(named=True):
        cells = _cells(row)
        lines.append("| " + " | ".join(cells[c].replace("|", "\\|") for c in columns) + " |")
    return lines


def csv(board: Leaderboard) -> str:
    """Every column of every row (fractions, not points), ranked rows first, with ``listed`` and ``differs``."""
    return board.rows.write_csv()


def html_page(board: Leaderboard, title: str = "DataEnvGym leaderboard") -> str:
    """One self-contained HTML page: the tables and, per agent, its per-skill test learning curves as inline SVG."""
    head = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}} th{{background:#f3f3f3}} td.t{{text-align:left}}
.curves{{display:flex;flex-wrap:wrap;gap:12px}} figure{{margin:0;border:1px solid #ddd;padding:6px}} figcaption{{font-size:12px}}
.legend{{font-size:12px;color:#555;max-width:70em}} .skills{{font-size:11px;max-width:340px}} .skills span{{margin-right:6px}}</style></head><body>"""
    parts = [head, f"<h1>{html.escape(title)}</h1>", "<ul>", *(f"<li>{html.escape(n)}</li>" for n in _groups_note(board)), "</ul>"]
    parts.append(_html_table(board.ranked, RANKED_COLUMNS, "ranked"))
    if not board.apart.is_empty():
        parts += ["<h2>Not comparable with the ranked rows</h2>", _html_table(board.apart.with_columns(listed=pl.lit("apart")), APART_COLUMNS, "apart")]
    parts += [f'<p class="legend">{html.escape(LEGEND)}</p>', "<h2>Per-skill test accuracy by iteration (mean over seeds)</h2>", '<div class="curves">']
    for row in board.rows.iter_rows(named=True):
        key = {column: row[column] for column in ROW_KEY}
        curves = board.curves.filter(*(pl.col(c) == v for c, v in key.items()))
        caption = f"{row['domain']} · {row['environment']} · {row['agent']} {row['agent_version']} (budget {row['data_budget']}, {row['seeds']} seeds)"
        parts.append(
            f"<figure>{learning_curves_svg(curves)}<figcaption>{html.escape(caption)}</figcaption>{_skill_legend(curves)}</figure>"
        )
    parts += ["</div></body></html>"]
    return "\n".join(parts)


def _html_table(rows: pl.DataFrame, columns: tuple[str, ...], name: str) -> str:
    text = {"domain", "environment", "agent", "version", "state", "engine", "differs", "vs best blind [95 % CI]"}
    out = [f'<table id="{name}"><thead><tr>' + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr></thead><tbody>"]
    for row in rows.iter_rows(named=True):
        cells = _cells(row)
        out.append("<tr>" + "".join(f'<td{" class=t" if c in text else ""}>{html.escape(cells[c])}</td>' for c in columns) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _skill_legend(curves: pl.DataFrame) -> str:
    """The colour of each skill's line, in the order :func:`learning_curves_svg` draws them; black is the mean."""
    skills = sorted(curves["skill"].unique().to_list())
    spans = "".join(
        f'<span style="color:{colour}">{"╍" if dash else "━"} {html.escape(skill)}</span>'
        for skill, (colour, dash) in zip(skills, map(skill_style, range(len(skills))), strict=True)
    )
    return f'<div class="skills">{spans}<span>━ mean</span></div>'


FORMATS = {"markdown": markdown, "csv": csv, "html": html_page}

"""Plain-text reports of an experiment, read from the warehouse views."""

from __future__ import annotations

import duckdb
import polars as pl

from dataenvgym_dagster.machinery.warehouse import Warehouse


def skill_table(warehouse: Warehouse, domain: str, experiment: str, value: str = "accuracy") -> pl.DataFrame:
    """Per-skill ``accuracy`` or ``answer_loss``, one column per (split, iteration), plus an ``ALL`` row."""
    if value not in ("accuracy", "answer_loss"):
        raise ValueError(f"value must be 'accuracy' or 'answer_loss', not {value!r}")
    with warehouse.connect(under=[domain, experiment]) as connection:  # this experiment's files alone
        rows = connection.sql(
            f"""
            SELECT skill, split, iteration, {value} AS value FROM skill_accuracy
            WHERE domain = ? AND experiment = ?
            UNION ALL
            SELECT 'ALL' AS skill, split, iteration, {value} AS value FROM accuracy_by_iteration
            WHERE domain = ? AND experiment = ?
            """,
            params=[domain, experiment, domain, experiment],
        ).pl()
    if rows.is_empty():
        raise LookupError(f"the warehouse under {warehouse.home} has no evaluations for {domain}|{experiment}")
    rows = rows.with_columns(column=pl.format("{} it{}", pl.col("split").str.slice(0, 4), pl.col("iteration")))
    order = rows.sort("split", "iteration", descending=[True, False])["column"].unique(maintain_order=True).to_list()
    return rows.pivot("column", index="skill", values="value").select("skill", *order).sort(
        pl.col("skill") == "ALL", "skill"
    )


def test_gain(warehouse: Warehouse, domain: str, experiment: str) -> tuple[int, float, float]:
    """(last iteration, iteration 0 test accuracy, last iteration's test accuracy)."""
    with warehouse.connect(under=[domain, experiment]) as connection:
        return test_gain_in(connection, domain, experiment)


def test_gain_in(connection: duckdb.DuckDBPyConnection, domain: str, experiment: str) -> tuple[int, float, float]:
    """:func:`test_gain` from an open connection's views."""
    rows = connection.execute(
        "SELECT iteration, accuracy FROM accuracy_by_iteration WHERE domain = ? AND experiment = ? AND split = 'test' ORDER BY iteration",
        [domain, experiment],
    ).fetchall()
    if not rows or rows[0][0] != 0:
        raise LookupError(f"no iteration 0 test evaluation for {domain}|{experiment}")
    return rows[-1][0], rows[0][1], rows[-1][1]


def format_table(table: pl.DataFrame) -> str:
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=2, tbl_hide_dataframe_shape=True, tbl_width_chars=200, fmt_str_lengths=40):
        return str(table)


NO_BASELINE = "no no-state run"


def gain_by_policy_markdown(warehouse: Warehouse, domain: str | None = None) -> str:
    """The ``gain_by_policy`` view (the paper's Table 2) as a Markdown table, accuracies in percent."""
    with warehouse.connect() as connection:
        rows = connection.sql(
            "SELECT * FROM gain_by_policy WHERE ? IS NULL OR domain = ?", params=[domain, domain]
        ).pl()
    if rows.is_empty():
        raise LookupError(f"the warehouse under {warehouse.home} has no finished experiments with an experiment_runs row")
    lines = [
        "| domain | environment | policy | state | seeds | base | final | gain [95 % CI] | vs no-state |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    unpaired = []
    for r in rows.iter_rows(named=True):
        versus = NO_BASELINE if r["gain_over_no_state"] is None else f"{100 * r['gain_over_no_state']:+.1f}"
        if r["gain_over_no_state"] is None:
            unpaired.append(f"{r['domain']} {r['environment']}")
        lines.append(
            f"| {r['domain']} | {r['environment']} | {r['policy']} | {'with' if r['uses_state'] else 'no'} | {r['seeds']} "
            f"| {100 * r['base_accuracy']:.1f} | {100 * r['final_accuracy']:.1f} "
            f"| {100 * r['gain']:+.1f} [{100 * r['gain_ci_low']:+.1f}, {100 * r['gain_ci_high']:+.1f}] "
            f"| {versus} |"
        )
    if unpaired:
        lines.append(
            f"\n{NO_BASELINE}: no finished run of the same environment's no_state policy with the same teacher and "
            f"data budget ({', '.join(sorted(set(unpaired)))}), so there is no gain over it to show; run one, e.g. "
            "dataenvgym run --experiment skill_list_no_state, to fill the column."
        )
    return "\n".join(lines)

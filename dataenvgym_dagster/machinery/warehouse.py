"""The metrics warehouse: Parquet files written atomically, DuckDB views over them.

Every table is a folder of Parquet files, one file per asset partition, under
``$DATAENVGYM_HOME/warehouse/<table>/``. A file is written beside its final name and renamed
into place, so a reader sees the old rows or the new ones, never half, and re-materialising a
partition replaces its rows instead of adding to them.

``warehouse.duckdb`` holds only view definitions over those folders. Runs open it just to
(re)create views when their definitions change, so a user holding the file open in the
``duckdb`` CLI never makes a run fail, and concurrent runs never contend for its lock.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb
import polars as pl

TABLES: dict[str, dict[str, pl.DataType]] = {
    "benchmark_problems": {
        "domain": pl.String, "split": pl.String, "example_id": pl.String, "skill": pl.String,
        "question": pl.String, "answer": pl.String,
    },
    "pretraining_corpus": {
        "domain": pl.String, "example_id": pl.String, "skill": pl.String, "question": pl.String, "answer": pl.String,
    },
    "evaluation_results": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "split": pl.String,
        "example_id": pl.String, "skill": pl.String, "question": pl.String, "prediction": pl.String,
        "reference": pl.String, "correct": pl.Boolean, "answer_loss": pl.Float64, "checkpoint_sha256": pl.String,
    },
    "environment_states": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "evaluated_iteration": pl.Int32,
        "skill": pl.String, "n": pl.Int64, "accuracy": pl.Float64, "answer_loss": pl.Float64,
    },
    "data_generation_plans": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "environment": pl.String,
        "policy": pl.String, "entry_id": pl.String, "skill": pl.String, "parent_skill": pl.String,
        "count": pl.Int64, "similar_to": pl.Int64, "rationale": pl.String,
    },
    "generated_examples": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "example_id": pl.String,
        "skill": pl.String, "question": pl.String, "answer": pl.String, "plan_entry_id": pl.String,
        "teacher": pl.String, "passed_quality_checks": pl.Boolean, "rejection_reason": pl.String,
    },
    "training_runs": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "recipe": pl.String,
        "examples": pl.Int64, "steps": pl.Int64, "tokens": pl.Int64, "seconds": pl.Float64,
        "tokens_per_second": pl.Float64, "final_loss": pl.Float64,
    },
    "lineage": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "checkpoint": pl.String,
        "checkpoint_sha256": pl.String, "source_kind": pl.String, "source": pl.String, "examples": pl.Int64,
    },
    # The teacher ledger: one row per logical LLM call, appended (never replaced), see machinery/teacher/ledger.py.
    "teacher_calls": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "purpose": pl.String,
        "model": pl.String, "prompt_version": pl.String, "prompt_hash": pl.String, "input_tokens": pl.Int64,
        "output_tokens": pl.Int64, "cost_usd": pl.Float64, "latency_s": pl.Float64, "attempts": pl.Int64,
        "cache_hit": pl.Boolean, "outcome": pl.String, "error": pl.String, "recorded_at": pl.Datetime("us", "UTC"),
    },
}

# Views computed from the tables; the tables themselves are views of the same name.
DERIVED_VIEWS = {
    "skill_accuracy": """
        SELECT domain, experiment, iteration, split, skill,
               count(*) AS n, sum(correct::INTEGER) AS n_correct, avg(correct::INTEGER) AS accuracy,
               avg(answer_loss) AS answer_loss
        FROM evaluation_results GROUP BY ALL""",
    "accuracy_by_iteration": """
        SELECT domain, experiment, iteration, split,
               count(*) AS n, avg(correct::INTEGER) AS accuracy, avg(answer_loss) AS answer_loss
        FROM evaluation_results GROUP BY ALL""",
    # What the teacher cost per iteration: paid calls, cache hits, retries, tokens and dollars.
    "teacher_cost_by_iteration": """
        SELECT domain, experiment, iteration,
               count(*) AS calls, sum(cache_hit::INTEGER) AS cache_hits,
               sum((outcome <> 'ok')::INTEGER) AS failed_calls, sum(attempts) AS requests,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cost_usd) AS cost_usd, sum(latency_s) AS call_seconds
        FROM teacher_calls GROUP BY ALL""",
    # Teacher spend per point of test accuracy gained: (final − iteration 0) test accuracy, in points.
    "teacher_cost_per_accuracy_point": """
        WITH test AS (
            SELECT domain, experiment, max(iteration) AS final_iteration,
                   arg_max(accuracy, iteration) AS final_accuracy,
                   max(accuracy) FILTER (WHERE iteration = 0) AS base_accuracy
            FROM accuracy_by_iteration WHERE split = 'test' GROUP BY ALL),
        cost AS (SELECT domain, experiment, sum(cost_usd) AS cost_usd, count(*) AS calls FROM teacher_calls GROUP BY ALL)
        SELECT test.domain, test.experiment, final_iteration, base_accuracy, final_accuracy,
               100 * (final_accuracy - base_accuracy) AS points_gained,
               coalesce(cost.cost_usd, 0) AS cost_usd, coalesce(cost.calls, 0) AS calls,
               CASE WHEN final_accuracy > base_accuracy
                    THEN coalesce(cost.cost_usd, 0) / (100 * (final_accuracy - base_accuracy)) END AS cost_usd_per_point
        FROM test LEFT JOIN cost USING (domain, experiment)""",
}

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


class WarehouseLockedError(RuntimeError):
    """Another process holds ``warehouse.duckdb`` open for writing."""


class Warehouse:
    """The tables and views under one ``$DATAENVGYM_HOME``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.tables = self.home / "warehouse"
        self.database = self.home / "warehouse.duckdb"

    # -- writing ------------------------------------------------------------------------------
    def write(self, table: str, key: Sequence[str], rows: pl.DataFrame) -> Path:
        """Replace the rows of ``table`` stored under ``key`` (e.g. domain, experiment, asset)."""
        frame = conform(table, rows)
        path = self.tables.joinpath(table, *key).with_suffix(".parquet")
        _write_atomically(frame, path)
        return path

    def read(self, table: str, key: Sequence[str]) -> pl.DataFrame:
        """The rows stored under ``key``; ``FileNotFoundError`` if none were ever written."""
        return pl.read_parquet(self.tables.joinpath(table, *key).with_suffix(".parquet"))

    # -- views --------------------------------------------------------------------------------
    def view_statements(self) -> list[str]:
        statements = []
        for table in TABLES:
            glob = (self.tables / table / "**" / "*.parquet").as_posix().replace("'", "''")
            statements.append(
                f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{glob}', union_by_name = true)"
            )
        statements += [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in DERIVED_VIEWS.items()]
        return statements

    def ensure_schema_files(self) -> None:
        """An empty, typed Parquet file per table, so each view has columns before any data exists."""
        for table, schema in TABLES.items():
            path = self.tables / table / "_schema.parquet"
            if not path.exists():
                _write_atomically(pl.DataFrame(schema=schema), path)

    def ensure_views(self, timeout_seconds: float = 10.0) -> bool:
        """Create or update the views in ``warehouse.duckdb``. Returns whether the file was touched.

        The file is opened only when the view definitions differ from those recorded beside it.
        Raises :class:`WarehouseLockedError` if another process holds it for longer than
        ``timeout_seconds``.
        """
        self.ensure_schema_files()
        statements = self.view_statements()
        fingerprint = hashlib.sha256("\n".join(statements).encode()).hexdigest()
        stamp = self.home / "warehouse.views.sha256"
        if self.database.exists() and stamp.exists() and stamp.read_text() == fingerprint:
            return False
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                with duckdb.connect(str(self.database)) as connection:
                    for statement in statements:
                        connection.execute(statement)
                break
            except duckdb.IOException as error:
                if not any(marker in str(error) for marker in _LOCK_MARKERS):
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseLockedError(
                        f"{self.database} is held open for writing by another process ({error}). "
                        "Table data is safe in Parquet; the views will be updated on the next run. "
                        "Open the warehouse read-only (duckdb -readonly) to avoid this."
                    ) from error
                time.sleep(0.2)
        stamp.write_text(fingerprint)
        return True

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every view: queries that never wait on a lock."""
        self.ensure_schema_files()
        connection = duckdb.connect()
        for statement in self.view_statements():
            connection.execute(statement)
        return connection


def conform(table: str, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with exactly the table's columns and types, or a ``ValueError`` naming what is wrong."""
    try:
        schema = TABLES[table]
    except KeyError:
        raise ValueError(f"unknown warehouse table {table!r}; tables: {', '.join(TABLES)}") from None
    missing = [column for column in schema if column not in rows.columns]
    extra = [column for column in rows.columns if column not in schema]
    if missing or extra:
        raise ValueError(f"rows for warehouse table {table!r} have missing columns {missing} and unknown columns {extra}")
    if rows.is_empty():
        return pl.DataFrame(schema=schema)
    return rows.select([pl.col(column).cast(dtype, strict=True) for column, dtype in schema.items()])


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name does not end in .parquet, so readers' globs never see a half-written file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        frame.write_parquet(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

"""The metrics warehouse: Parquet files written atomically, DuckDB views over them.

Every table is a folder of Parquet files, one file per asset partition, under
``$DATAENVGYM_HOME/warehouse/<table>/``. A file is written beside its final name and renamed
into place, so a reader sees the old rows or the new ones, never half, and re-materialising a
partition replaces its rows instead of adding to them.

``warehouse.duckdb`` holds only view definitions over those folders. Runs open it just to
(re)create views when their definitions change, so a user holding the file open in a
DuckDB client never makes a run fail, and concurrent runs never contend for its lock.

The Parquet folders may also live in an object store (``s3://…``, ``gs://…``, see
:mod:`~dataenvgym_dagster.machinery.storage`): a partition file is then written locally,
checked, and uploaded as one object, which appears whole or not at all. The views are the same
``read_parquet`` globs with the store's URL; DuckDB reads them through the same fsspec
filesystem, registered on each connection, so no DuckDB extension is needed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from dataenvgym_dagster.asset_names import iteration_asset_name
from dataenvgym_dagster.machinery.leaderboard_views import LEADERBOARD_VIEWS
from dataenvgym_dagster.machinery.storage import Storage, hidden_temporary, replace_file

TABLES: dict[str, dict[str, pl.DataType]] = {
    # ``payload``: JSON text with what a domain needs beyond question and answer (solution, tests, image, plan).
    "benchmark_problems": {
        "domain": pl.String, "split": pl.String, "example_id": pl.String, "skill": pl.String,
        "question": pl.String, "answer": pl.String, "payload": pl.String,
    },
    "pretraining_corpus": {
        "domain": pl.String, "example_id": pl.String, "skill": pl.String, "question": pl.String, "answer": pl.String,
        "payload": pl.String,
    },
    # ``prediction``: the answer the domain extracted from ``completion``; ``correct`` is ``score = 1``;
    # ``metrics``: JSON of further per-example figures a domain reports.
    "evaluation_results": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "split": pl.String,
        "example_id": pl.String, "skill": pl.String, "question": pl.String, "prediction": pl.String,
        "reference": pl.String, "correct": pl.Boolean, "score": pl.Float64, "verdict": pl.String,
        "metrics": pl.String, "completion": pl.String, "answer_loss": pl.Float64, "checkpoint_sha256": pl.String,
    },
    "environment_states": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "environment": pl.String,
        "evaluated_iteration": pl.Int32, "kind": pl.String, "node": pl.String, "parent": pl.String, "n": pl.Int64,
        "accuracy": pl.Float64, "answer_loss": pl.Float64, "previous_accuracy": pl.Float64,
        "allocation": pl.Float64, "generated_so_far": pl.Int64,
    },
    "policy_actions": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "environment": pl.String,
        "policy": pl.String, "policy_version": pl.String, "skill": pl.String, "action": pl.String, "reward": pl.Float64,
        "observed_accuracy": pl.Float64, "detail": pl.String,
    },
    "skill_taxonomies": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "discoverer": pl.String,
        "version": pl.String, "category": pl.String, "skill": pl.String, "questions": pl.Int64,
    },
    "skill_mappings": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "previous_version": pl.String,
        "version": pl.String, "old_skill": pl.String, "new_skill": pl.String, "share": pl.Float64,
    },
    "experiment_runs": {
        "domain": pl.String, "experiment": pl.String, "name": pl.String, "environment": pl.String,
        "policy": pl.String, "policy_version": pl.String, "uses_state": pl.Boolean, "teacher": pl.String,
        "teacher_version": pl.String, "discoverer": pl.String, "seed": pl.Int64, "data_budget": pl.Int64, "recipe": pl.String, "settings": pl.String,
    },
    "data_generation_plans": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "environment": pl.String,
        "policy": pl.String, "policy_version": pl.String, "entry_id": pl.String, "skill": pl.String, "parent_skill": pl.String,
        "count": pl.Int64, "similar_to": pl.Int64, "rationale": pl.String,
    },
    "generated_examples": {
        "domain": pl.String, "experiment": pl.String, "iteration": pl.Int32, "example_id": pl.String,
        "skill": pl.String, "question": pl.String, "answer": pl.String, "payload": pl.String, "plan_entry_id": pl.String,
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

BOOTSTRAP_REPLICATES = 1000

# Views computed from the tables; the tables themselves are views of the same name.
DERIVED_VIEWS = {
    "skill_accuracy": """
        SELECT domain, experiment, iteration, split, skill,
               count(*) AS n, sum(correct::INTEGER) AS n_correct, avg(correct::INTEGER) AS accuracy,
               avg(score) AS mean_score, avg(answer_loss) AS answer_loss
        FROM evaluation_results GROUP BY ALL""",
    "accuracy_by_iteration": """
        SELECT domain, experiment, iteration, split,
               count(*) AS n, avg(correct::INTEGER) AS accuracy, avg(score) AS mean_score, avg(answer_loss) AS answer_loss
        FROM evaluation_results GROUP BY ALL""",
    # Tool use (MnMs): the published metrics of MnMs's evaluator, pooled over the examples of each
    # (domain, experiment, iteration, split) from the per-example counts in evaluation_results.metrics,
    # on MnMs's 0-100 scale (domain/tool_use/scoring.py defines them): tool_* macro over the tools
    # (each plan's tools a set), argname_* micro over `tool--sorted argument names` labels. The
    # project's per-example means (example_*), plan_valid and unparsable are on the same 0-100 scale.
    # Rows scored before these counts existed (no argname_gold) are left out: n counts the rows used.
    "tool_use_metrics": """
        WITH scored AS (
            SELECT domain, experiment, iteration, split, example_id, metrics, verdict FROM evaluation_results
            WHERE metrics->>'$.plan_accuracy' IS NOT NULL AND metrics->>'$.argname_gold' IS NOT NULL),
        tool_marks AS (
            SELECT domain, experiment, iteration, split, example_id,
                   regexp_extract(key, '^tool_(gold|predicted):(.*)$', 1) AS side,
                   regexp_extract(key, '^tool_(gold|predicted):(.*)$', 2) AS tool
            FROM (SELECT *, unnest(json_keys(metrics)) AS key FROM scored) WHERE regexp_matches(key, '^tool_(gold|predicted):')),
        per_example AS (
            SELECT domain, experiment, iteration, split, tool,
                   bool_or(side = 'gold') AS gold, bool_or(side = 'predicted') AS predicted
            FROM tool_marks GROUP BY domain, experiment, iteration, split, example_id, tool),
        per_tool AS (
            SELECT domain, experiment, iteration, split, tool,
                   sum(gold::INTEGER) AS gold, sum(predicted::INTEGER) AS predicted,
                   sum((gold AND predicted)::INTEGER) AS matched
            FROM per_example GROUP BY ALL),
        tool_scores AS (
            SELECT *, CASE WHEN precision + recall > 0 THEN 2 * precision * recall / (precision + recall) ELSE 0 END AS f1
            FROM (SELECT *, CASE WHEN predicted > 0 THEN matched / predicted ELSE 0 END AS precision,
                            CASE WHEN gold > 0 THEN matched / gold ELSE 0 END AS recall FROM per_tool)),
        macro AS (
            SELECT domain, experiment, iteration, split, 100 * avg(precision) AS tool_precision,
                   100 * avg(recall) AS tool_recall, 100 * avg(f1) AS tool_f1
            FROM tool_scores GROUP BY ALL),
        pooled AS (
            SELECT domain, experiment, iteration, split, count(*) AS n,
                   100 * avg((metrics->>'$.plan_accuracy')::DOUBLE) AS plan_accuracy,
                   100 * avg((metrics->>'$.plan_argname_accuracy')::DOUBLE) AS plan_argname_accuracy,
                   sum((metrics->>'$.argname_matched')::DOUBLE) AS matched,
                   sum((metrics->>'$.argname_predicted')::DOUBLE) AS predicted,
                   sum((metrics->>'$.argname_gold')::DOUBLE) AS gold,
                   100 * avg((metrics->>'$.example_tool_f1')::DOUBLE) AS example_tool_f1,
                   100 * avg((metrics->>'$.example_argname_f1')::DOUBLE) AS example_argname_f1,
                   100 * avg((metrics->>'$.plan_valid')::DOUBLE) AS plan_valid,
                   100 * avg((verdict = 'unparsable')::INTEGER) AS unparsable
            FROM scored GROUP BY ALL),
        argname AS (
            SELECT *, CASE WHEN predicted > 0 THEN matched / predicted ELSE 0 END AS argname_precision,
                      CASE WHEN gold > 0 THEN matched / gold ELSE 0 END AS argname_recall FROM pooled)
        SELECT a.domain, a.experiment, a.iteration, a.split, a.n, a.plan_accuracy,
               coalesce(m.tool_precision, 0) AS tool_precision, coalesce(m.tool_recall, 0) AS tool_recall,
               coalesce(m.tool_f1, 0) AS tool_f1,
               100 * a.argname_precision AS argname_precision, 100 * a.argname_recall AS argname_recall,
               CASE WHEN a.argname_precision + a.argname_recall > 0
                    THEN 200 * a.argname_precision * a.argname_recall / (a.argname_precision + a.argname_recall)
                    ELSE 0 END AS argname_f1,
               a.plan_argname_accuracy, a.example_tool_f1, a.example_argname_f1, a.plan_valid, a.unparsable
        FROM argname a LEFT JOIN macro m USING (domain, experiment, iteration, split)""",
    # NaturalBench (vqa): each group is one row of the file, four (image, question) instances named
    # q<question>_i<image> in benchmark_problems.payload. Question accuracy: a question right on both
    # images; image accuracy: both questions right on an image; group accuracy: all four right.
    # Accuracies are over complete groups; incomplete_groups counts the others (never silently mixed in).
    "vqa_group_metrics": """
        WITH instances AS (
            SELECT e.domain, e.experiment, e.iteration, e.split, b.payload->>'$.group' AS group_id,
                   b.payload->>'$.instance' AS instance, e.correct
            FROM evaluation_results e
            JOIN benchmark_problems b ON b.domain = e.domain AND b.split = e.split AND b.example_id = e.example_id
            WHERE b.payload->>'$.group' IS NOT NULL AND b.payload->>'$.instance' IS NOT NULL),
        groups AS (
            SELECT domain, experiment, iteration, split, group_id,
                   count(DISTINCT instance) = 4 AND count(*) = 4 AS complete, sum(correct::INTEGER) AS n_right,
                   bool_and(correct) FILTER (WHERE instance IN ('q0_i0', 'q0_i1')) AS question_0,
                   bool_and(correct) FILTER (WHERE instance IN ('q1_i0', 'q1_i1')) AS question_1,
                   bool_and(correct) FILTER (WHERE instance IN ('q0_i0', 'q1_i0')) AS image_0,
                   bool_and(correct) FILTER (WHERE instance IN ('q0_i1', 'q1_i1')) AS image_1,
                   bool_and(correct) AS all_right
            FROM instances GROUP BY ALL)
        SELECT domain, experiment, iteration, split,
               count(*) FILTER (WHERE complete) AS groups,
               4 * count(*) FILTER (WHERE complete) AS n,
               sum(n_right) FILTER (WHERE complete) / (4 * count(*) FILTER (WHERE complete)) AS accuracy,
               avg((question_0::INTEGER + question_1::INTEGER) / 2) FILTER (WHERE complete) AS question_accuracy,
               avg((image_0::INTEGER + image_1::INTEGER) / 2) FILTER (WHERE complete) AS image_accuracy,
               avg(all_right::INTEGER) FILTER (WHERE complete) AS group_accuracy,
               count(*) FILTER (WHERE NOT complete) AS incomplete_groups
        FROM groups GROUP BY ALL""",
    "quality_filter_counts": """
        SELECT domain, experiment, iteration, teacher, count(*) AS produced,
               count(*) FILTER (WHERE passed_quality_checks) AS kept,
               count(*) FILTER (WHERE rejection_reason = 'unknown_skill') AS unknown_skill,
               count(*) FILTER (WHERE rejection_reason = 'undecodable_image') AS undecodable_image,
               count(*) FILTER (WHERE rejection_reason = 'blank_image') AS blank_image,
               count(*) FILTER (WHERE rejection_reason = 'wrong_answer') AS wrong_answer,
               count(*) FILTER (WHERE rejection_reason = 'benchmark_overlap') AS benchmark_overlap,
               count(*) FILTER (WHERE rejection_reason = 'duplicate_image') AS duplicate_image,
               count(*) FILTER (WHERE rejection_reason = 'duplicate') AS duplicate,
               count(*) FILTER (WHERE rejection_reason = 'already_solved') AS already_solved
        FROM generated_examples GROUP BY ALL""",
    # The paper's Table 2: per (domain, environment, policy, teacher, budget) over seeds, the base and
    # final test accuracy, the gain with a 95 % bootstrap interval (runs resampled, then test
    # examples within each run; 1000 replicates, deterministic) and the gain over the same
    # environment's no-state policy. Accuracies are fractions. Only runs that reached their
    # group's last iteration count, so a half-finished seed never lowers the final accuracy.
    "gain_by_policy": f"""
        WITH reached AS (
            SELECT domain, experiment, max(iteration) AS final_iteration
            FROM evaluation_results WHERE split = 'test' GROUP BY ALL HAVING max(iteration) > 0),
        last AS (  -- runs still in progress (behind the others of their group) are left out
            SELECT reached.* FROM reached JOIN experiment_runs r USING (domain, experiment)
            QUALIFY final_iteration = max(final_iteration) OVER (PARTITION BY domain, r.environment, r.policy, r.teacher, r.data_budget)),
        paired AS (
            SELECT b.domain, b.experiment, l.final_iteration, b.example_id,
                   b.correct::DOUBLE AS base, f.correct::DOUBLE AS final
            FROM evaluation_results b
            JOIN last l ON l.domain = b.domain AND l.experiment = b.experiment
            JOIN evaluation_results f ON f.domain = b.domain AND f.experiment = b.experiment AND f.split = 'test'
                 AND f.iteration = l.final_iteration AND f.example_id = b.example_id
            WHERE b.split = 'test' AND b.iteration = 0),
        labelled AS (
            SELECT p.*, r.environment, r.policy, r.uses_state, r.teacher, r.data_budget,
                   dense_rank() OVER (PARTITION BY p.domain, r.environment, r.policy, r.teacher, r.data_budget
                                      ORDER BY p.experiment) - 1 AS run_index,
                   row_number() OVER (PARTITION BY p.domain, p.experiment ORDER BY p.example_id) - 1 AS example_index
            FROM paired p JOIN experiment_runs r USING (domain, experiment)),
        groups AS (
            SELECT domain, environment, policy, uses_state, teacher, data_budget,
                   count(DISTINCT experiment) AS seeds, max(final_iteration) AS iterations,
                   max(example_index) + 1 AS n,
                   avg(base) AS base_accuracy, avg(final) AS final_accuracy
            FROM labelled GROUP BY ALL),
        draws AS (
            SELECT g.domain, g.environment, g.policy, g.teacher, g.data_budget, r.b, d.j, e.i,
                   hash(r.b, d.j, 'run') % g.seeds AS run_index,
                   hash(r.b, d.j, e.i, 'example') % g.n AS example_index
            FROM groups g, range({BOOTSTRAP_REPLICATES}) r(b), range(g.seeds) d(j), range(g.n) e(i)),
        replicates AS (
            SELECT d.domain, d.environment, d.policy, d.teacher, d.data_budget, d.b, avg(l.final - l.base) AS gain
            FROM draws d JOIN labelled l USING (domain, environment, policy, teacher, data_budget, run_index, example_index)
            GROUP BY ALL),
        intervals AS (
            SELECT domain, environment, policy, teacher, data_budget,
                   quantile_cont(gain, 0.025) AS gain_ci_low, quantile_cont(gain, 0.975) AS gain_ci_high
            FROM replicates GROUP BY ALL)
        SELECT g.domain, g.environment, g.policy, g.uses_state, g.teacher, g.data_budget, g.seeds, g.iterations,
               g.base_accuracy, g.final_accuracy, g.final_accuracy - g.base_accuracy AS gain,
               i.gain_ci_low, i.gain_ci_high,
               g.final_accuracy - n.final_accuracy AS gain_over_no_state
        FROM groups g
        JOIN intervals i USING (domain, environment, policy, teacher, data_budget)
        LEFT JOIN groups n ON n.domain = g.domain AND n.environment = g.environment AND n.policy = 'no_state'
             AND n.teacher = g.teacher AND n.data_budget = g.data_budget
        ORDER BY g.domain, g.environment, g.uses_state DESC, g.policy""",
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
    **LEADERBOARD_VIEWS,  # leaderboard_runs and leaderboard: see machinery/leaderboard_views.py
}

# Views that compare experiments (seeds, baselines, rankings): in a connection scoped to one
# experiment (``Warehouse.connect(under=...)``) they raise an error saying so instead of answering.
ACROSS_EXPERIMENTS = frozenset({"gain_by_policy", "leaderboard"})

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")

# Which asset writes each table, for naming what to re-materialise when a file is damaged. Tables
# an asset returns are stored under ``<asset key joined by __>``; the others under ``iteration_<t>``.
WRITTEN_BY = {
    "skill_taxonomies": "skill_taxonomy", "skill_mappings": "skill_taxonomy",
    "policy_actions": "data_generation_plan", "lineage": "student_checkpoint",
    "training_runs": "student_checkpoint",
}


class DamagedTableFileError(RuntimeError):
    """A warehouse Parquet file cannot be read; every query over its table fails until it is replaced."""


@dataclass(frozen=True)
class DamagedFile:
    """A warehouse file that is not a readable Parquet file, and what writes it."""

    table: str
    path: Path | str
    """A local path, or the object's URL in an object store."""
    error: str
    asset: str
    partition: str

    def describe(self) -> str:
        return (
            f"{self.path} ({self.table}) is damaged: {self.error}. Re-materialise {self.asset} for partition "
            f"{self.partition} (in the UI, or delete the file and run `dataenvgym run` for that experiment)"
        )


def _verify(path: Path | str, rows: int, storage: Storage | None = None, parts: tuple[str, ...] = ()) -> None:
    """Raise if ``path`` (or the object ``parts`` of ``storage``) is not a complete Parquet file of ``rows`` rows."""
    try:
        if storage is None:
            found = pq.read_metadata(path).num_rows
        else:
            with storage.open(*parts) as handle:
                found = pq.read_metadata(handle).num_rows
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, … for a damaged file
        raise DamagedTableFileError(f"{path} is not a readable Parquet file after writing it ({error})") from error
    if found != rows:
        raise DamagedTableFileError(f"{path} holds {found} rows after writing {rows}; the disk may be full or failing")


class WarehouseLockedError(RuntimeError):
    """Another process holds ``warehouse.duckdb`` open for writing."""


class Warehouse:
    """The tables and views under one ``$DATAENVGYM_HOME``, with the tables' Parquet files in ``storage``.

    ``storage`` defaults to the home itself (a local folder); ``warehouse.duckdb`` is always in
    the local home.
    """

    def __init__(self, home: Path, storage: Storage | None = None) -> None:
        self.home = Path(home)
        self.storage = storage or Storage.at(self.home)
        self.database = self.home / "warehouse.duckdb"

    @property
    def tables(self) -> Path:
        """The local folder of the tables (for local storage; an object store has no such folder)."""
        return self.storage.local_path("warehouse")

    # -- writing ------------------------------------------------------------------------------
    def write(self, table: str, key: Sequence[str], rows: pl.DataFrame) -> Path | str:
        """Replace the rows of ``table`` stored under ``key`` (e.g. domain, experiment, asset).

        Returns the file written: a local path, or the object's URL in an object store."""
        frame = conform(table, rows)
        return self._store(frame, _file_parts(table, key))

    def read(self, table: str, key: Sequence[str]) -> pl.DataFrame:
        """The rows stored under ``key``; ``FileNotFoundError`` if none were ever written."""
        parts = _file_parts(table, key)
        if self.storage.is_local:
            return pl.read_parquet(self.storage.local_path(*parts))
        with self.storage.open(*parts) as handle:
            return pl.read_parquet(handle)

    def remove(self, table: str, key: Sequence[str]) -> Path | str | None:
        """Delete the rows stored under ``key``; the file removed, or ``None`` if there was none."""
        parts = _file_parts(table, key)
        if not self.storage.exists(*parts):
            return None
        self.storage.remove(*parts)
        return self.storage.local_path(*parts) if self.storage.is_local else self.storage.url(*parts)

    def _store(self, frame: pl.DataFrame, parts: tuple[str, ...]) -> Path | str:
        """Write one partition file atomically: rename into place locally, one upload of a checked file otherwise."""
        if self.storage.is_local:
            path = self.storage.local_path(*parts)
            _write_atomically(frame, path)
            return path
        with tempfile.TemporaryDirectory(prefix="dataenvgym-upload-") as folder:
            local = Path(folder, parts[-1])
            frame.write_parquet(local)
            _verify(local, len(frame))
            self.storage.put_file(local, parts)
        url = self.storage.url(*parts)
        _verify(url, len(frame), self.storage, parts)  # what readers will see
        return url

    # -- views --------------------------------------------------------------------------------
    def view_statements(
        self, tables: Collection[str] | None = None, temporary: bool = False, under: Sequence[str] = ()
    ) -> list[str]:
        """``CREATE VIEW`` of every table and derived view; with ``tables``, of those tables only.
        ``temporary``: ``CREATE TEMP VIEW``, seen by the connection that creates it alone.
        ``under``: only the rows stored under that key prefix (domain, experiment), see :meth:`connect`."""
        if isinstance(under, str):
            raise TypeError(f"under is a sequence of key parts such as [domain, experiment], not the string {under!r}")
        for part in under:  # one folder name each: "..", "" or a pattern would read other experiments' rows
            if part in ("", ".", "..") or any(character in part for character in "/\\*?[]{}"):
                raise ValueError(f"under={list(under)!r}: {part!r} is not a key part (a domain or experiment name)")
        view = "TEMP VIEW" if temporary else "VIEW"
        statements = []
        for table in TABLES if tables is None else tables:
            if table not in TABLES:
                raise ValueError(f"unknown warehouse table {table!r}; tables: {', '.join(TABLES)}")
            statements.append(
                f"CREATE OR REPLACE {view} {table} AS SELECT * FROM read_parquet({self._source(table, under)}, union_by_name = true)"
            )
        if tables is None:
            for name, sql in DERIVED_VIEWS.items():
                if under and name in ACROSS_EXPERIMENTS:  # over one experiment's rows it would answer, wrongly
                    sql = f"SELECT error({sql_string(f'{name} compares experiments: query it without under=')}) AS {name}"
                statements.append(f"CREATE OR REPLACE {view} {name} AS {sql.strip()}")
        return statements

    def _source(self, table: str, under: Sequence[str]) -> str:
        """What ``read_parquet`` reads for ``table``: every file of it, or those stored under ``under``.

        The schema file gives a partition that has written nothing yet its columns (DuckDB refuses a
        pattern that matches no file), and a table without an experiment column (a domain's
        benchmark and corpus) is stored per domain. DuckDB is given the folder's pattern, not the
        files one by one: named files, it looks up each one again (some 14 requests each on S3)."""
        if not under:
            return sql_string(self.storage.url("warehouse", table, "**", "*.parquet"))
        prefix = ("warehouse", table, *(under if "experiment" in TABLES[table] else under[:1]))
        if self.storage.is_local:  # the home's own path taken literally, brackets and all
            written = next(self.storage.local_path(*prefix).rglob("*.parquet"), None) is not None
        else:
            written = bool(self.storage.glob(*prefix, "**", "*.parquet"))
        sources = [self.storage.url("warehouse", table, "_schema.parquet")]
        if written:
            sources.append(self.storage.url(*prefix, "**", "*.parquet"))
        return "[" + ", ".join(map(sql_string, sources)) + "]"

    def ensure_schema_files(self) -> None:
        """An empty, typed Parquet file per table, so each view has columns before any data exists."""
        present = {parts[1] for parts in self.storage.glob("warehouse", "*", "_schema.parquet")}  # one listing
        for table, schema in TABLES.items():
            if table not in present:
                self._store(pl.DataFrame(schema=schema), ("warehouse", table, "_schema.parquet"))

    def _register(self, connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Let DuckDB read the object store through fsspec (no httpfs extension to download)."""
        if not self.storage.is_local:
            connection.register_filesystem(self.storage.query_fs())
        return connection

    def ensure_views(self, timeout_seconds: float = 10.0) -> bool:
        """Create or update the views in ``warehouse.duckdb``. Returns whether the file was touched.

        The file is opened only when the view definitions differ from those recorded beside it.
        Raises :class:`WarehouseLockedError` if another process holds it for longer than
        ``timeout_seconds``.
        """
        statements = self.view_statements()
        fingerprint = hashlib.sha256("\n".join(statements).encode()).hexdigest()
        stamp = self.home / "warehouse.views.sha256"
        if self.database.exists() and stamp.exists() and stamp.read_text() == fingerprint:
            # The stamp is written only after the schema files: an object store is not listed again on every write.
            if self.storage.is_local:
                self.ensure_schema_files()
            return False
        self.ensure_schema_files()
        self.home.mkdir(parents=True, exist_ok=True)  # with an object store, nothing else may have made it yet
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                with self._register(duckdb.connect(str(self.database))) as connection:
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
                        "Query it with `dataenvgym sql` (which never takes its lock), or open it with read_only=True, to avoid this."
                    ) from error
                time.sleep(0.2)
        replace_file(stamp, fingerprint.encode())
        return True

    def damaged_files(self) -> list[DamagedFile]:
        """Every Parquet file under the warehouse that is not readable, with the asset and partition to redo."""
        damaged = []
        for table in TABLES:
            for parts in self.storage.glob("warehouse", table, "**", "*.parquet"):
                try:
                    with self.storage.open(*parts) as handle:
                        pq.read_metadata(handle)
                except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                    asset, partition = _writer_of(table, Path(*parts[2:]))
                    where = self.storage.local_path(*parts) if self.storage.is_local else self.storage.url(*parts)
                    damaged.append(DamagedFile(table, where, str(error).splitlines()[0], asset, partition))
        return damaged

    def check(self) -> None:
        """Raise :class:`DamagedTableFileError` naming every damaged file and what to re-materialise."""
        damaged = self.damaged_files()
        if damaged:
            raise DamagedTableFileError("the warehouse has damaged files:\n" + "\n".join(f.describe() for f in damaged))

    def connect(
        self, tables: Collection[str] | None = None, *, private: bool = False, under: Sequence[str] = ()
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every view: queries that never wait on a lock.

        ``tables``: only those tables' views. Creating a view lists and opens its files, so a step
        that reads one table asks for it alone (0.01 s instead of about 0.1 s for all of them).
        ``under``: views of the rows stored under that key prefix alone (``(domain, experiment)``:
        one experiment's, and its domain's benchmark and corpus, which have no experiment column),
        so that what a step reads does not grow with the rest of the home: a query that filters a
        whole table's view still opens every file of every experiment. The views that compare
        experiments (:data:`ACROSS_EXPERIMENTS`) then raise an error saying so.
        ``private``: a database of its own (25–40 ms to open), for statements a user writes, so that
        nothing they create or set outlives the connection; otherwise a connection to the process's
        database (microseconds) with views of its own."""
        self.ensure_schema_files()
        shared = self.storage.is_local and not private
        # An object store's file system is registered on its connection alone: it gets its own database.
        connection = _process_database().cursor() if shared else self._register(duckdb.connect())
        for statement in self.view_statements(tables, temporary=shared, under=under):
            connection.execute(statement)
        return connection


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (a path, a name, a message), its quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


_process: list[duckdb.DuckDBPyConnection] = []  # this process's in-memory database, once opened


def _process_database() -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB database, opened once: opening one takes 25–40 ms (DuckDB sets
    up its buffer pool and threads), a new connection to it (``cursor()``) microseconds."""
    if not _process:
        _process.append(duckdb.connect())
    return _process[0]


def _forget_inherited_database() -> None:
    """In a forked child: the parent's database must never be closed here (its threads stayed in the
    parent, and closing it crashes the child at exit), so it stays referenced for good; the child
    opens its own on first use."""
    for database in _process:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(database))
    _process.clear()


os.register_at_fork(after_in_child=_forget_inherited_database)


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


def _file_parts(table: str, key: Sequence[str]) -> tuple[str, ...]:
    """Where the rows under ``key`` are stored: ``warehouse/<table>/<key…>.parquet``."""
    *folders, name = key
    return ("warehouse", table, *folders, Path(name).with_suffix(".parquet").name)


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name does not end in .parquet, so readers' globs never see a half-written file.
    temporary = hidden_temporary(path)
    try:
        frame.write_parquet(temporary)
        _verify(temporary, len(frame))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _verify(path, len(frame))  # what readers will see


def _writer_of(table: str, relative: Path) -> tuple[str, str]:
    """(asset, partition) that writes ``relative`` (a path under the table's folder)."""
    parts = list(relative.with_suffix("").parts)
    if relative.name == "_schema.parquet":
        return "nothing (an empty schema file: delete it, the next run rewrites it)", "-"
    if table == "teacher_calls":
        return f"the {parts[2] if len(parts) > 2 else ''} asset that called the teacher", "|".join(parts[:2])
    if table in WRITTEN_BY and len(parts) >= 3:
        return iteration_asset_name(int(parts[2].removeprefix("iteration_")), WRITTEN_BY[table]), "|".join(parts[:2])
    *partition, asset = parts
    return asset.replace("__", "/"), "|".join(partition)

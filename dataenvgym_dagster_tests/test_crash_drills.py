"""Crash drills: `dataenvgym run` killed with SIGKILL mid-training, mid-evaluation and mid-write, then re-run.

Each run is a real subprocess of the CLI over one home; the kill is a real SIGKILL. The re-run
must finish the experiment, leave tables equal to an uninterrupted run's (the loop is
deterministic), without duplicate rows, temporary files where readers look, half-written
checkpoints, or runs shown as in progress forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance, DagsterRunStatus
from polars.testing import assert_frame_equal

from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import write_catalog

pytestmark = pytest.mark.slow

# Run in the child: SIGKILL the process itself at the moment a warehouse file of ``$CRASH_ON_WRITE``
# is written under its temporary name but not yet renamed into place.
CHILD = """
import os, signal, sys
target = os.environ.get("CRASH_ON_WRITE")
if target:
    real_replace = os.replace
    def replace(source, destination, *args, **kwargs):
        if str(source).endswith(".tmp") and target in str(destination):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(source, destination, *args, **kwargs)
    os.replace = replace
from dataenvgym_dagster.cli import main
sys.exit(main(sys.argv[1:]))
"""

# Columns that differ between two identical runs: wall-clock timings and absolute paths.
VOLATILE = {"seconds", "tokens_per_second", "checkpoint", "recorded_at", "latency_s"}
COMPARED = ["evaluation_results", "generated_examples", "data_generation_plans", "environment_states",
            "policy_actions", "skill_taxonomies", "training_runs", "lineage", "experiment_runs"]


def environment(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env.update(DATAENVGYM_HOME=str(root / "home"), DATAENVGYM_EXPERIMENTS=str(root / "experiments.yaml"))
    return env


def start(root: Path, experiment: str = "skill_list", crash_on_write: str | None = None) -> subprocess.Popen:
    env = environment(root)
    if crash_on_write:
        env["CRASH_ON_WRITE"] = crash_on_write
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, "run", "--experiment", experiment], env=env, cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def kill_when(process: subprocess.Popen, marker: str, timeout: float = 600) -> list[str]:
    """SIGKILL ``process`` as soon as it prints a line containing ``marker``; its output so far."""
    lines, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            process.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(lines[-30:])
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"never saw {marker!r}:\n" + "".join(lines[-30:])
    return lines


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-4000:]
    return output


def tables(home: Path) -> dict[str, pl.DataFrame]:
    with Warehouse(home).connect() as connection:
        frames = {table: connection.sql(f"SELECT * FROM {table}").pl() for table in COMPARED}
    return {
        table: frame.drop([c for c in frame.columns if c in VOLATILE])
        .with_columns(pl.col(pl.String).str.replace_all(str(home), "<home>", literal=True))
        .sort(pl.all())
        for table, frame in frames.items()
    }


def visible_temporary_files(home: Path) -> list[Path]:
    """Files a reader could mistake for data: anything under the warehouse or checkpoints not hidden by a dot."""
    suspects = [p for p in (home / "warehouse").rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".parquet"]
    return suspects + [p for p in (home / "checkpoints").rglob("*.tmp") if not any(part.startswith(".") for part in p.parts)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, pl.DataFrame]:
    """The micro experiment run once, uninterrupted, by the CLI."""
    root = tmp_path_factory.mktemp("clean")
    write_catalog(root / "experiments.yaml")
    finish(start(root))
    return tables(root / "home")


def test_killed_in_training_evaluation_and_a_warehouse_write_the_rerun_equals_a_clean_run(tmp_path, clean):
    write_catalog(tmp_path / "experiments.yaml")
    home = tmp_path / "home"

    # 1. Killed while iteration 1's student trains: no checkpoint folder appears, only a hidden partial one.
    kill_when(start(tmp_path), "it1_checkpoint - training step")
    checkpoints = home / "checkpoints" / "arithmetic" / "skill_list"
    assert not (checkpoints / "iteration_1").exists()

    # 2. Killed during iteration 1's evaluations. It resumed: foundations and iteration 0 were kept.
    output = "".join(kill_when(start(tmp_path), "it1_evaluate - test: evaluated"))
    assert "== foundations_job for arithmetic: up to date" in output and "pretraining a" not in output
    assert "of 18 assets are missing or older than their inputs" in output and "it0_evaluate" not in output

    # 3. Killed between writing iteration 2's test evaluation under its temporary name and renaming it.
    killed = start(tmp_path, crash_on_write="it2_test_eval")
    killed.communicate(timeout=900)
    assert killed.returncode == -signal.SIGKILL
    hidden = list((home / "warehouse" / "evaluation_results").rglob(".it2_test_eval*.tmp"))
    assert hidden, "the drill should have left the temporary file behind"
    assert visible_temporary_files(home) == []
    with Warehouse(home).connect() as connection:  # readers see whole partitions only
        counts = connection.sql("SELECT iteration, split, count(*) FROM evaluation_results GROUP BY ALL").fetchall()
    assert {n for *_, n in counts} == {48}

    # 4. The re-run finishes what is missing, and the tables equal the uninterrupted run's.
    output = finish(start(tmp_path))
    assert "marked run" in output and "as failed" in output  # the killed runs no longer show as in progress
    rerun = tables(home)
    for table, frame in clean.items():
        assert_frame_equal(rerun[table], frame, check_row_order=True)
    with Warehouse(home).connect() as connection:
        duplicates = connection.sql(
            "SELECT count(*) FROM (SELECT iteration, split, example_id FROM evaluation_results GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    assert duplicates == 0
    assert not list(checkpoints.glob(".*.partial"))
    instance = DagsterInstance.local_temp(str(home / "dagster"))
    statuses = {run.status for run in instance.get_runs()}
    assert DagsterRunStatus.STARTED not in statuses and DagsterRunStatus.FAILURE in statuses

    # 5. A further re-run has nothing to do.
    output = finish(start(tmp_path))
    assert output.count("up to date, nothing to do") == 2


def test_two_experiments_at_once_while_a_reader_holds_the_database_open(tmp_path):
    from dataenvgym_dagster.cli import INSTANCE_SETTINGS
    from dataenvgym_dagster.definitions import build_definitions
    from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB

    catalog_file = write_catalog(tmp_path / "experiments.yaml")
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_SETTINGS)
    instance = DagsterInstance.local_temp(str(home / "dagster"))
    foundations = build_definitions(home=str(home), experiments_file=catalog_file).resolve_job_def(FOUNDATIONS_JOB)
    assert foundations.execute_in_process(partition_key="arithmetic", instance=instance).success
    seen_partial, stop = [], threading.Event()

    def read_while_held() -> None:
        with duckdb.connect(str(home / "warehouse.duckdb")) as held:  # a user's SQL session, holding the file
            while not stop.is_set():
                rows = held.sql("SELECT experiment, iteration, split, count(*) FROM evaluation_results GROUP BY ALL").fetchall()
                seen_partial.extend(row for row in rows if row[3] != 48)
                time.sleep(0.05)

    reader = threading.Thread(target=read_while_held)
    reader.start()
    try:
        runs = [start(tmp_path, "skill_list"), start(tmp_path, "skill_list_no_state")]
        outputs = [finish(run) for run in runs]
    finally:
        stop.set()
        reader.join()
    assert seen_partial == []
    assert all("== foundations_job for arithmetic: up to date" in output for output in outputs)
    with Warehouse(home).connect() as connection:
        counts = connection.sql("SELECT experiment, count(*) FROM evaluation_results GROUP BY ALL ORDER BY ALL").fetchall()
    assert counts == [("skill_list", 6 * 48), ("skill_list_no_state", 6 * 48)]

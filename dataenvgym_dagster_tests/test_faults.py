"""Operations under faults: first runs at once, two runs of one partition, a full disk, a missing
benchmark file, a broken catalogue. Each drill runs the real CLI (subprocesses, over a fresh home)
and checks the one line a user reads and, where something ran, that the tables equal a clean run's.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from dataenvgym_dagster.cli import INSTANCE_SETTINGS, main
from dataenvgym_dagster.defs.instance import PARTITION_TAG
from dataenvgym_dagster.defs.turns import PartitionBusyError, partition_turn
from dataenvgym_dagster.machinery.locks import file_lock

from .conftest import write_catalog

# Imports first, then every process waits for the same moment: the CLI's own work starts together.
AT_ONCE = """
import os, sys, time
from dataenvgym_dagster.cli import main
while time.time() < float(os.environ["START_AT"]):
    time.sleep(0.001)
sys.exit(main(sys.argv[1:]))
"""


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env.update(DATAENVGYM_HOME=str(root / "home"), DATAENVGYM_EXPERIMENTS=str(root / "experiments.yaml"), **extra)
    return env


def at_once(root: Path, commands: list[list[str]], lead_s: float = 15.0, **extra: str) -> list[subprocess.Popen]:
    """Start one CLI process per command, all beginning their work at the same moment."""
    env = cli_env(root, START_AT=str(time.time() + lead_s), **extra)
    return [
        subprocess.Popen([sys.executable, "-c", AT_ONCE, *command], env=env, cwd=root, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for command in commands
    ]


def version_rows(dagster_home: Path) -> dict[str, list[str]]:
    files = ["history/runs.db", "history/runs/index.db", "schedules/schedules.db"]
    rows = {}
    for name in files:
        with sqlite3.connect(dagster_home / name) as connection:
            rows[name] = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
    return rows


# -- the instance, created once ------------------------------------------------------------------
def test_first_commands_at_the_same_moment_create_the_instance_once(tmp_path, monkeypatch):
    write_catalog(tmp_path / "experiments.yaml")
    processes = at_once(tmp_path, [["instance"], ["instance"], ["doctor"], ["doctor"]])
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    rows = version_rows(tmp_path / "home" / "dagster")
    assert all(len(versions) == 1 for versions in rows.values()), rows
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["doctor"]) == 0


def test_an_instance_stamped_twice_is_named_with_the_fix_and_repaired(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(write_catalog(tmp_path / "experiments.yaml")))
    assert main(["instance"]) == 0
    runs_db = tmp_path / "home" / "dagster" / "history" / "runs.db"
    with sqlite3.connect(runs_db) as connection:  # what two first runs at once used to leave
        connection.execute("INSERT INTO alembic_version VALUES ('5771160a95ad')")
    capsys.readouterr()

    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error and "alembic.util" not in error
    assert error.startswith(f"dataenvgym: {runs_db}: its schema version table lists 2 versions")
    assert "run `dataenvgym doctor --repair`" in error

    assert main(["doctor"]) == 1
    assert f"{runs_db}: its schema version table lists 2 versions" in capsys.readouterr().out
    assert main(["doctor", "--repair"]) == 0
    assert f"{runs_db}: repaired" in capsys.readouterr().out
    assert len(version_rows(tmp_path / "home" / "dagster")["history/runs.db"]) == 1


def test_the_instance_settings_queue_one_run_per_partition(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["instance"]) == 0
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").read_text() == INSTANCE_SETTINGS
    with DagsterInstance.from_config(str(tmp_path / "home" / "dagster")) as instance:
        queue = instance.get_concurrency_config().run_queue_config
    assert [(limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
        (PARTITION_TAG, {"applyLimitPerUniqueValue": True}, 1)
    ]


def test_unedited_settings_of_an_earlier_version_are_brought_up_to_date(tmp_path, monkeypatch):
    from dataenvgym_dagster.defs.instance import PREVIOUS_SETTINGS

    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = tmp_path / "home" / "dagster" / "dagster.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(PREVIOUS_SETTINGS[0])
    assert main(["instance"]) == 0
    assert settings.read_text() == INSTANCE_SETTINGS


# -- one run per partition -----------------------------------------------------------------------
def test_a_partition_held_by_another_cli_process_is_refused_at_once_naming_it(tmp_path):
    instance = DagsterInstance.ephemeral()
    held = threading.Event()
    release = threading.Event()
    lock = tmp_path / "locks" / "arithmetic|skill_list.lock"

    def other_process() -> None:  # flock is per open file: another descriptor behaves like another process
        with file_lock(lock, "dataenvgym run of arithmetic|skill_list"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=other_process)
    holder.start()
    held.wait(30)
    started = time.monotonic()
    try:
        with pytest.raises(PartitionBusyError) as refused:
            with partition_turn(instance, "arithmetic|skill_list", False, print, tmp_path / "locks"):
                pass
    finally:
        release.set()
        holder.join()
    message = str(refused.value)
    assert time.monotonic() - started < 2 and "\n" not in message
    assert message.startswith(f"arithmetic|skill_list is already being materialised by dataenvgym run of arithmetic|skill_list (pid {os.getpid()}")
    assert message.endswith("or add --wait to start after it")


def test_a_run_launched_by_the_daemon_is_named_and_waited_for_when_asked(tmp_path):
    instance = DagsterInstance.ephemeral()
    queued = create_run_for_test(instance, job_name="teaching_loop_job", status=DagsterRunStatus.STARTED,
                                 tags={PARTITION_TAG: "arithmetic|skill_list", "dagster/sensor_name": "advance_experiments"})
    described = f"run {queued.run_id} (teaching_loop_job, started, launched by advance_experiments)"
    with pytest.raises(PartitionBusyError, match=re.escape(f"by {described};")):
        with partition_turn(instance, "arithmetic|skill_list", False, print, tmp_path):
            pass

    said: list[str] = []
    finisher = threading.Timer(1.0, lambda: instance.report_run_failed(instance.get_run_by_id(queued.run_id)))
    finisher.start()
    with partition_turn(instance, "arithmetic|skill_list", True, said.append, tmp_path):
        assert instance.get_run_by_id(queued.run_id).status == DagsterRunStatus.FAILURE
    assert said == [f"== waiting for {described} to finish arithmetic|skill_list"]

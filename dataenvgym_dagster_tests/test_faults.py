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


def materialisations(home: Path) -> dict[str, int]:
    """How many times each asset of the home was materialised, per partition."""
    from dagster import AssetRecordsFilter

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        counts = {}
        for key in instance.get_asset_keys():
            records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=100).records
            for record in records:
                name = f"{key.to_user_string()}[{record.partition_key}]"
                counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.slow
def test_runs_of_one_experiment_started_at_the_same_moment_do_its_work_once(tmp_path):
    from dataenvgym_dagster.machinery.warehouse import Warehouse
    from dataenvgym_dagster_tests.openai_server import OpenAITestServer
    from dataenvgym_dagster_tests.test_llm_teacher_loop import LLM_EXPERIMENT

    write_catalog(tmp_path / "experiments.yaml", {"experiments": {"llm": LLM_EXPERIMENT}, "default_experiment": "llm"})
    with OpenAITestServer() as server:
        teacher = {"DATAENVGYM_TEACHER_BASE_URL": server.base_url, "DATAENVGYM_TEACHER_MODEL": "test-teacher",
                   "DATAENVGYM_TEACHER_API_KEY": "sk-test"}
        # On a fresh home: two plain runs and one that waits, all at once (the instance is created once, too).
        processes = at_once(tmp_path, [["run"], ["run"], ["run", "--wait"]], **teacher)
        outputs = [process.communicate(timeout=1800) for process in processes]
        requests = server.requests
    codes = [process.returncode for process in processes]
    assert codes[2] == 0, outputs[2][1][-3000:]
    worked = [i for i, (out, _) in enumerate(outputs) if "all 18 assets" in out]
    assert len(worked) == 1 and codes[worked[0]] == 0, outputs
    for index in (0, 1):
        if index in worked:
            continue
        assert codes[index] == 3, outputs[index]
        error = outputs[index][1]
        assert error.count("\n") == 1 and error.startswith("dataenvgym: arithmetic|llm is already being materialised by ")
        assert "let it finish" in error and "--wait" in error
    if 2 not in worked:
        assert outputs[2][0].count("up to date, nothing to do") == 2 and "== waiting for " in outputs[2][0]

    home = tmp_path / "home"
    assert all(len(versions) == 1 for versions in version_rows(home / "dagster").values())
    assert set(materialisations(home).values()) == {1}  # every asset of every partition, once
    with Warehouse(home).connect() as connection:
        calls = connection.sql("SELECT prompt_hash, cache_hit FROM teacher_calls").pl()
    assert calls.height > 0 and not calls["cache_hit"].any()
    assert calls["prompt_hash"].n_unique() == calls.height == requests  # each prompt paid once


# -- a full disk -----------------------------------------------------------------------------------
def cli(root: Path, *arguments: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = cli_env(root)
    if home is not None:
        env["DATAENVGYM_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "dataenvgym_dagster", *arguments], env=env, cwd=root,
                          capture_output=True, text=True, timeout=1800)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (the micro experiment's home needs about 3.5 MiB), unmounted afterwards; needs root."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_said_in_one_line_and_the_rerun_after_freeing_space_equals_a_clean_run(tmp_path, small_disk):
    from dataenvgym_dagster_tests.test_crash_drills import tables

    write_catalog(tmp_path / "experiments.yaml")
    assert cli(tmp_path, "run", home=tmp_path / "clean").returncode == 0
    home = small_disk / "home"

    failed = cli(tmp_path, "run", home=home)
    assert failed.returncode == 2
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dataenvgym: no space left on the disk holding {home} (") and "free of 3.0 MiB" in last
    assert "Traceback" not in failed.stderr and "Stack Trace" not in failed.stderr
    # Dagster's complaints about log lines it could not write go into the run's failure record, not the terminal.
    assert "Exception while writing logger call to event log" not in failed.stderr
    # No torn file where readers look.
    assert not [p for p in home.rglob("*") if p.is_file() and p.suffix in (".parquet", ".svg", ".png") and p.name.startswith(".") is False
                and not _readable(p)]

    # doctor works on the full disk and names the cause; the run is marked failed with it, not as "killed".
    doctor = cli(tmp_path, "doctor", home=home)
    assert doctor.returncode == 1 and doctor.stdout.startswith(f"no space left on the disk holding {home}"), doctor
    died = [line for line in doctor.stdout.splitlines() if line.startswith("arithmetic|skill_list: its latest run")]
    assert len(died) == 1 and "failed: no space left on the disk holding" in died[0], doctor.stdout
    assert "SIGKILL" not in doctor.stdout and "Traceback" not in doctor.stdout + doctor.stderr

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    rerun = cli(tmp_path, "run", home=home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    clean, after = tables(tmp_path / "clean"), tables(home)
    for table, frame in clean.items():
        assert after[table].equals(frame), table


def _readable(path: Path) -> bool:
    if path.suffix == ".svg":
        from xml.etree import ElementTree

        try:
            ElementTree.parse(path)
            return True
        except ElementTree.ParseError:
            return False
    if path.suffix == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                image.load()
            return True
        except Exception:  # noqa: BLE001
            return False
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # noqa: BLE001
        return False


# -- a missing benchmark file, a broken catalogue --------------------------------------------------
def test_a_missing_benchmark_file_is_said_in_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    experiments = {"e": {"policy": "weak_skills", "data_budget": 16}}
    domains = {"tool_use": {"benchmark": {"source": "mnms", "path": str(tmp_path / "data" / "mnms")}}}
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(write_catalog(
        tmp_path / "experiments.yaml", {"domains": domains, "experiments": experiments, "default_experiment": "e"})))
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["run", "--domain", "tool_use"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"dataenvgym: MnMs file {tmp_path / 'data' / 'mnms' / 'test_human_verified_filtered.json'} does not exist")
    assert "test_human_verified_filtered.json and test_human_verified.json" in error  # the expected layout
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(("change", "expected"), [
    ({"data_budget": -5}, "experiments.skill_list.data_budget (line {line}): must be greater than 0, not -5"),
    ({"automation": "sometimes"}, "experiments.skill_list.automation (line {line}): sometimes is not allowed; allowed values: off, eager"),
    ({"policy": "oracle"}, "experiments.skill_list (line {line}): policy 'oracle' does not exist for environment 'skill_list'"),
])
def test_an_invalid_catalogue_entry_is_said_in_one_line_with_its_field_and_line(tmp_path, monkeypatch, capsys, change, expected):
    experiments = {"skill_list": {**yaml.safe_load(yaml.safe_dump({"policy": "weak_skills", "data_budget": 96})), **change}}
    path = write_catalog(tmp_path / "experiments.yaml", {"experiments": experiments})
    field = next(iter(change)) if "policy" not in change else "skill_list"
    line = next(number for number, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith(f"{field}:"))
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(path))
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "input_value" not in error and "pydantic.dev" not in error
    assert error.startswith(f"dataenvgym: experiment catalogue {path} is invalid: {expected.format(line=line)}")


def test_an_unknown_experiment_is_named_without_stray_quotes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(write_catalog(tmp_path / "experiments.yaml")))
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    assert main(["run", "--experiment", "nope"]) == 2
    assert capsys.readouterr().err == "dataenvgym: unknown experiment 'nope'; this catalogue has: skill_list, skill_list_no_state\n"


# -- atomic artefacts ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".svg", ".png"])  # .png: the plots of versions before 2026-12-07, still in older homes
def test_doctor_names_a_torn_learning_curve_plot_and_what_to_redo(tmp_path, monkeypatch, capsys, suffix):
    import polars as pl

    from dataenvgym_dagster.machinery.plots import accuracy_thumbnail_png, learning_curves_svg

    plot = tmp_path / "home" / "plots" / "arithmetic" / "skill_list" / f"learning_curves_iteration_2{suffix}"
    plot.parent.mkdir(parents=True)
    curves = pl.DataFrame({"iteration": [0, 1], "skill": ["a", "a"], "accuracy": [0.1, 0.5]})
    whole = learning_curves_svg(curves).encode() if suffix == ".svg" else accuracy_thumbnail_png([0.1, 0.5, 0.7])
    plot.with_name(f"learning_curves_iteration_1{suffix}").write_bytes(whole)  # a whole plot is not named
    plot.write_bytes(whole[:200])  # what a plain write left on a full disk
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"{plot} (learning curves) is damaged" in out
    assert "Re-materialise iteration_2_test_evaluation for partition arithmetic|skill_list" in out
    assert "learning_curves_iteration_1" not in out


def test_the_learning_curve_plot_is_written_atomically_and_replaces_an_older_png(tmp_path, monkeypatch):
    import dataenvgym_dagster.machinery.storage as storage
    from dataenvgym_dagster.defs.metadata import learning_curve_metadata
    from dataenvgym_dagster.machinery.warehouse import Warehouse
    import polars as pl

    replaced = []
    real = os.replace
    monkeypatch.setattr(storage.os, "replace", lambda source, target: (replaced.append(Path(target).name), real(source, target)))
    results = pl.DataFrame({"domain": ["arithmetic"] * 2, "experiment": ["e"] * 2, "iteration": [0, 0],
                            "skill": ["a", "b"], "correct": [True, False]})
    folder = tmp_path / "plots" / "arithmetic" / "e"
    folder.mkdir(parents=True)
    (folder / "learning_curves_iteration_0.png").write_bytes(b"drawn by an earlier version")
    learning_curve_metadata(Warehouse(tmp_path / "home"), results, tmp_path / "plots")
    assert "learning_curves_iteration_0.svg" in replaced
    assert [p.name for p in folder.iterdir()] == ["learning_curves_iteration_0.svg"]


# -- sensors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("sensor", ["register_experiments", "advance_experiments"])
def test_a_sensor_that_cannot_read_the_catalogue_fails_its_tick_naming_file_and_line(tmp_path, sensor):
    from dagster import build_sensor_context

    from dataenvgym_dagster.experiments.config import CatalogError

    from .conftest import make_workspace

    workspace = make_workspace(tmp_path)
    catalogue = tmp_path / "experiments.yaml"
    catalogue.write_text(catalogue.read_text().replace("data_budget: 96", "data_budget: -1", 1))
    definition = workspace.defs.resolve_sensor_def(sensor)
    with pytest.raises(CatalogError) as failed:  # the daemon records a raised error as a failed tick
        definition.evaluate_tick(build_sensor_context(instance=workspace.instance, definitions=workspace.defs))
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"experiment catalogue {catalogue} is invalid: experiments.")
    assert ".data_budget (line " in message and "must be greater than 0, not -1" in message


def test_a_registration_tick_says_what_it_registered(tmp_path):
    from dagster import build_sensor_context

    from .conftest import make_workspace

    workspace = make_workspace(tmp_path)
    data = workspace.defs.resolve_sensor_def("register_experiments").evaluate_tick(
        build_sensor_context(instance=workspace.instance, definitions=workspace.defs))
    assert data.skip_message == "registered skill_list, skill_list_no_state"
    assert [list(r.partition_keys) for r in data.dynamic_partitions_requests] == [["skill_list", "skill_list_no_state"]]


def test_dagsters_event_log_complaints_are_held_during_a_run_and_none_is_lost(capsys):
    from dataenvgym_dagster.defs.event_log_complaints import PREFIX, held_event_log_complaints

    with held_event_log_complaints() as complaints:
        sys.stderr.write(f"{PREFIX}: [Errno 28] No space left on device\n")  # as Dagster's handler writes it
        print("step 3 of 9", file=sys.stderr)
        assert complaints == [f"{PREFIX}: [Errno 28] No space left on device"]
        assert capsys.readouterr().err == "step 3 of 9\n"
    # Not taken into a failure record: written out when the run ends.
    assert capsys.readouterr().err == f"{PREFIX}: [Errno 28] No space left on device\n"
    with held_event_log_complaints() as complaints:
        sys.stderr.write(f"{PREFIX}: disk I/O error\n")
        complaints.clear()  # what a full disk's failure record does with them
    assert capsys.readouterr().err == ""

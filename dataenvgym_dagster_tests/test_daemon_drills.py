"""Drills under a live daemon (``dagster-daemon run``, what ``make ui`` starts): a catalogue broken and
fixed while the sensors tick, a daemon killed with SIGKILL mid-chain and started again, and the
daemon's whole process group (its run worker too) killed mid-chain and started again.

Each drill runs the real daemon over a fresh home with the micro catalogue and reads what it did
from the instance: the sensors' tick records, the runs, the materialisations and the warehouse
tables, compared with a clean ``dataenvgym run`` of the same experiment.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus

from dataenvgym_dagster.asset_names import iteration_asset_name
from dataenvgym_dagster.defs.automation import SENSOR as ADVANCE
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB
from dataenvgym_dagster.defs.registration import SENSOR as REGISTER
from dataenvgym_dagster.defs.turns import PENDING_STATUSES

from .conftest import MICRO_CATALOG
from .daemon import Daemon, prepare_home
from .test_crash_drills import tables
from .test_faults import materialisations

pytestmark = pytest.mark.slow

PARTITION = "arithmetic|skill_list"


def catalogue(automation: str) -> dict:
    experiment = {**MICRO_CATALOG["experiments"]["skill_list"], "automation": automation}
    return {**MICRO_CATALOG, "experiments": {"skill_list": experiment}}


def ticks_since(instance: DagsterInstance, sensor: str, since: float) -> list:
    """The sensor's finished ticks that started after ``since`` (epoch seconds), oldest first."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=50)
            return sorted((tick for tick in ticks if tick.timestamp > since and tick.status != TickStatus.STARTED),
                          key=lambda tick: tick.timestamp)
    return []


def test_a_catalogue_broken_under_the_daemon_fails_each_sensor_tick_naming_it_and_the_fix_is_picked_up(tmp_path):
    env = prepare_home(tmp_path, catalogue("off"))
    file = tmp_path / "experiments.yaml"
    good = file.read_text()
    with Daemon(tmp_path, env) as daemon, DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        daemon.wait_for("a first tick of each sensor", lambda: all(ticks_since(instance, s, 0) for s in (REGISTER, ADVANCE)))

        broken_at = time.time()
        file.write_text(good.replace("data_budget: 96", "data_budget: -1", 1))
        failed = {
            sensor: daemon.wait_for(f"a failed tick of {sensor}", lambda sensor=sensor: next(
                (t for t in ticks_since(instance, sensor, broken_at) if t.status == TickStatus.FAILURE), None))
            for sensor in (REGISTER, ADVANCE)
        }
        for sensor, tick in failed.items():
            error = tick.error.to_string()
            assert f"experiment catalogue {file} is invalid: experiments.skill_list.data_budget (line " in error, (sensor, error)
            assert "must be greater than 0, not -1" in error, (sensor, error)

        fixed_at = time.time()
        file.write_text(good)
        for sensor in (REGISTER, ADVANCE):
            after = daemon.wait_for(f"a tick of {sensor} after the fix", lambda sensor=sensor: ticks_since(instance, sensor, fixed_at))
            assert after[0].status in (TickStatus.SKIPPED, TickStatus.SUCCESS), (sensor, after[0].error)
        skip = ticks_since(instance, ADVANCE, fixed_at)[0].skip_reason or ""
        assert "automation: eager" in skip  # the sensor read the fixed file and said why it launched nothing


def clean_tables(root: Path) -> dict:
    """The tables of an uninterrupted ``dataenvgym run`` of the same experiment (the same catalogue: its
    settings are a table too), in a home of its own."""
    env = prepare_home(root, catalogue("eager"))
    done = subprocess.run([sys.executable, "-m", "dataenvgym_dagster", "run"], env=env, cwd=root, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return tables(root / "home")


def test_a_daemon_killed_mid_chain_and_restarted_launches_nothing_twice_and_finishes_as_a_clean_run(tmp_path):
    clean = clean_tables(tmp_path / "clean")
    env = prepare_home(tmp_path / "daemon", catalogue("eager"))
    last = AssetKey(iteration_asset_name(MICRO_CATALOG["iterations"], "test_evaluation"))
    first = AssetKey(iteration_asset_name(0, "test_evaluation"))
    daemon = Daemon(tmp_path / "daemon", env)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        try:
            daemon.start()
            # Mid-chain: the loop's run is executing (iteration 0 is done, the rest is not).
            daemon.wait_for("iteration 0 materialised by the daemon's loop run", lambda: PARTITION in instance.get_materialized_partitions(first))
            assert PARTITION not in instance.get_materialized_partitions(last)
            daemon.kill(signal.SIGKILL)  # the daemon alone: its run worker goes on, as after a crash of the daemon
            daemon.start()
            daemon.wait_for("the chain's last asset", lambda: PARTITION in instance.get_materialized_partitions(last))
            daemon.wait_for("no run queued or in progress", lambda: not instance.get_runs(RunsFilter(statuses=PENDING_STATUSES)))
            time.sleep(3)  # a tick or more after the end: a sensor that relaunched would have done it by now
            assert not instance.get_runs(RunsFilter(statuses=PENDING_STATUSES))
        finally:
            daemon.stop()
        runs = instance.get_runs()
    assert sorted((run.job_name, run.status) for run in runs) == [
        (FOUNDATIONS_JOB, DagsterRunStatus.SUCCESS), (TEACHING_LOOP_JOB, DagsterRunStatus.SUCCESS)
    ], [(run.job_name, run.status, run.run_id) for run in runs]
    counts = materialisations(tmp_path / "daemon" / "home")
    assert counts and set(counts.values()) == {1}, {name: n for name, n in counts.items() if n != 1}
    after = tables(tmp_path / "daemon" / "home")
    for table, frame in clean.items():
        assert after[table].equals(frame), table


def test_a_daemon_killed_with_its_run_worker_mid_chain_resumes_by_retrying_the_run_and_finishes_as_a_clean_run(tmp_path):
    clean = clean_tables(tmp_path / "clean")
    env = prepare_home(tmp_path / "daemon", catalogue("eager"))
    last = AssetKey(iteration_asset_name(MICRO_CATALOG["iterations"], "test_evaluation"))
    first = AssetKey(iteration_asset_name(0, "test_evaluation"))
    daemon = Daemon(tmp_path / "daemon", env)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        try:
            daemon.start()
            daemon.wait_for("iteration 0 materialised by the daemon's loop run", lambda: PARTITION in instance.get_materialized_partitions(first))
            assert PARTITION not in instance.get_materialized_partitions(last)
            daemon.kill(signal.SIGKILL, group=True)  # the daemon, its code server and the run worker mid-step
            daemon.start()
            daemon.wait_for("the chain's last asset", lambda: PARTITION in instance.get_materialized_partitions(last))
            daemon.wait_for("no run queued or in progress", lambda: not instance.get_runs(RunsFilter(statuses=PENDING_STATUSES)))
            time.sleep(3)  # a tick or more after the end: a sensor that relaunched would have done it by now
            assert not instance.get_runs(RunsFilter(statuses=PENDING_STATUSES))
        finally:
            daemon.stop()
        runs = sorted(instance.get_runs(), key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)
        killed = next(run for run in runs if run.status == DagsterRunStatus.FAILURE)
        killed_logs = [e.dagster_event for e in instance.all_logs(killed.run_id) if e.dagster_event]
        failure = next(e for e in instance.all_logs(killed.run_id) if e.dagster_event and e.dagster_event.is_run_failure)
        # The step the kill interrupted: started in the killed run, never ended there.
        ended = {e.step_key for e in killed_logs if e.is_step_success or e.is_step_failure}
        in_flight = {e.step_key for e in killed_logs if e.is_step_start} - ended
    # The killed loop run, marked failed by the restarted daemon's sensor, and one automatic retry of it from the failed step.
    assert [(run.job_name, run.status) for run in runs] == [
        (FOUNDATIONS_JOB, DagsterRunStatus.SUCCESS), (TEACHING_LOOP_JOB, DagsterRunStatus.FAILURE),
        (TEACHING_LOOP_JOB, DagsterRunStatus.SUCCESS),
    ], [(run.job_name, run.status, run.run_id) for run in runs]
    assert "ended without finishing it (killed" in (failure.message or ""), failure.message
    retry = runs[2]
    assert retry.parent_run_id == killed.run_id and retry.tags.get("dagster/retry_number") == "1"
    counts = materialisations(tmp_path / "daemon" / "home")
    # Every asset once, except that the step in flight is redone by the retry: if the kill fell after it
    # recorded its materialisation and before the step ended, that asset is materialised again (same content).
    twice = {name.split("[")[0] for name, n in counts.items() if n != 1}
    assert len(in_flight) <= 1 and twice <= in_flight, (twice, in_flight)
    assert counts and set(counts.values()) <= {1, 2}
    after = tables(tmp_path / "daemon" / "home")
    for table, frame in clean.items():
        assert after[table].equals(frame), table

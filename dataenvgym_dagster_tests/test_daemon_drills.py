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
from dataclasses import dataclass
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


@dataclass
class KilledChain:
    """What a daemon killed mid-chain and started again left: the runs (oldest first), each failed run's
    events, how often each asset partition was materialised, and whether the tables equal a clean run's."""

    runs: list
    events: dict[str, list]
    counts: dict[str, int]
    tables_equal_clean: dict[str, bool]


def kill_mid_chain(tmp_path: Path, group: bool) -> KilledChain:
    """Run the micro experiment under the daemon, SIGKILL it (``group``: with its code server and run worker)
    while the loop run is between iterations 0 and the last, start it again and wait for the chain to end."""
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
            daemon.kill(signal.SIGKILL, group=group)
            daemon.start()
            daemon.wait_for("the chain's last asset", lambda: PARTITION in instance.get_materialized_partitions(last))
            daemon.wait_for("no run queued or in progress", lambda: not instance.get_runs(RunsFilter(statuses=PENDING_STATUSES)))
            time.sleep(3)  # a tick or more after the end: a sensor that relaunched would have done it by now
            assert not instance.get_runs(RunsFilter(statuses=PENDING_STATUSES))
        finally:
            daemon.stop()
        runs = sorted(instance.get_runs(), key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)
        events = {run.run_id: [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
                  for run in runs if run.status == DagsterRunStatus.FAILURE}
    after = tables(tmp_path / "daemon" / "home")
    return KilledChain(runs, events, materialisations(tmp_path / "daemon" / "home"),
                       {table: after[table].equals(frame) for table, frame in clean.items()})


def test_a_daemon_killed_mid_chain_and_restarted_launches_nothing_twice_and_finishes_as_a_clean_run(tmp_path):
    chain = kill_mid_chain(tmp_path, group=False)  # the daemon alone: its run worker goes on, as after a crash of the daemon
    assert [(run.job_name, run.status) for run in chain.runs] == [
        (FOUNDATIONS_JOB, DagsterRunStatus.SUCCESS), (TEACHING_LOOP_JOB, DagsterRunStatus.SUCCESS)
    ], [(run.job_name, run.status, run.run_id) for run in chain.runs]
    assert chain.counts and set(chain.counts.values()) == {1}, {name: n for name, n in chain.counts.items() if n != 1}
    assert all(chain.tables_equal_clean.values()), chain.tables_equal_clean


def test_a_daemon_killed_with_its_run_worker_mid_chain_resumes_by_retrying_the_run_and_finishes_as_a_clean_run(tmp_path):
    chain = kill_mid_chain(tmp_path, group=True)  # the daemon, its code server and the run worker mid-step
    # The killed loop run, marked failed by the restarted daemon's sensor, and one automatic retry of it from the failed step.
    assert [(run.job_name, run.status) for run in chain.runs] == [
        (FOUNDATIONS_JOB, DagsterRunStatus.SUCCESS), (TEACHING_LOOP_JOB, DagsterRunStatus.FAILURE),
        (TEACHING_LOOP_JOB, DagsterRunStatus.SUCCESS),
    ], [(run.job_name, run.status.value, run.run_id[:8], (run.parent_run_id or "")[:8],
         {k: v for k, v in run.tags.items() if "retry" in k or "stage" in k}) for run in chain.runs]
    killed, retry = chain.runs[1], chain.runs[2]
    events = chain.events[killed.run_id]
    failure = next(event for event in events if event.is_run_failure)
    assert "ended without finishing it (killed" in (failure.message or ""), failure.message
    assert retry.parent_run_id == killed.run_id and retry.tags.get("dagster/retry_number") == "1"
    # Every asset once, except that the step in flight is redone by the retry: if the kill fell after it
    # recorded a materialisation and before the step ended, that asset is materialised again (same content).
    # A step may make several assets (an iteration's two evaluations are one step), so assets are mapped to
    # the step the killed run made them in.
    ended = {event.step_key for event in events if event.is_step_success or event.is_step_failure}
    in_flight = {event.step_key for event in events if event.is_step_start} - ended
    made_by = {event.asset_key.to_user_string(): event.step_key for event in events if event.is_step_materialization}
    twice = {made_by.get(name.split("[")[0], name) for name, n in chain.counts.items() if n != 1}
    assert len(in_flight) <= 1 and twice <= in_flight, (twice, in_flight)
    assert chain.counts and set(chain.counts.values()) <= {1, 2}
    assert all(chain.tables_equal_clean.values()), chain.tables_equal_clean

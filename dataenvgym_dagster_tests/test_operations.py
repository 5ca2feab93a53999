"""Day-to-day operations: automation, schedules, an unusable home, damaged files, killed runs."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
)
from dagster._core.test_utils import create_run_for_test
from PIL import Image

from dataenvgym_dagster.cli import INSTANCE_SETTINGS, main
from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.automation import SENSOR
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.jobs import (
    EXPERIMENT_TAG,
    FOUNDATIONS_JOB,
    HOST_TAG,
    PID_TAG,
    SEED_TAG,
    TEACHING_LOOP_JOB,
    fail_abandoned_runs,
    iteration_job_name,
    plan_job,
)
from dataenvgym_dagster.defs.partitions import loop_partition_key
from dataenvgym_dagster.defs.schedules import schedule_name
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.experiments.config import CatalogError
from dataenvgym_dagster.machinery.warehouse import DamagedTableFileError, Warehouse

from .conftest import MICRO_CATALOG, make_workspace, tick, write_catalog

AUTOMATED = {"experiments": {**MICRO_CATALOG["experiments"], "skill_list": {**MICRO_CATALOG["experiments"]["skill_list"], "automation": "eager"}}}


def persistent(tmp_path: Path, overrides: dict | None = None):
    """A workspace whose instance lives on disk, as under the daemon (schedule contexts need one)."""
    workspace = make_workspace(tmp_path, overrides)
    (tmp_path / "dagster").mkdir()
    return dataclasses.replace(workspace, instance=DagsterInstance.local_temp(str(tmp_path / "dagster")))


def evaluate_sensor(workspace):
    return tick(workspace, SENSOR)


def iteration_asset_keys(workspace, iteration: int) -> list:
    return [key for key in workspace.defs.resolve_job_def(iteration_job_name(iteration)).asset_layer.executable_asset_keys]


# -- catalogue ---------------------------------------------------------------------------------
def test_a_schedule_that_is_not_cron_is_refused_with_an_example(tmp_path):
    experiments = {"skill_list": {**MICRO_CATALOG["experiments"]["skill_list"], "schedule": "nightly"}}
    with pytest.raises(CatalogError, match=r"schedule 'nightly' is not a cron string.*'0 3 \* \* \*'"):
        load_catalog(write_catalog(tmp_path / "experiments.yaml", {"experiments": experiments}))


def test_a_scheduled_experiment_gets_a_schedule_that_runs_every_seed_tagged(tmp_path):
    experiments = {"sweep": {**MICRO_CATALOG["experiments"]["skill_list"], "seeds": [0, 1], "schedule": "0 3 * * *"}}
    workspace = persistent(tmp_path, {"experiments": experiments, "default_experiment": "sweep_seed0"})
    schedule = workspace.defs.resolve_schedule_def(schedule_name("sweep"))
    assert schedule.cron_schedule == "0 3 * * *"
    requests = schedule(build_schedule_context(instance=workspace.instance))
    assert [(r.partition_key, r.job_name, r.tags[EXPERIMENT_TAG], r.tags[SEED_TAG]) for r in requests] == [
        (loop_partition_key("arithmetic", "sweep_seed0"), TEACHING_LOOP_JOB, "sweep", "0"),
        (loop_partition_key("arithmetic", "sweep_seed1"), TEACHING_LOOP_JOB, "sweep", "1"),
    ]


def test_a_schedule_skips_a_partition_that_is_still_running(tmp_path):
    experiments = {"nightly": {**MICRO_CATALOG["experiments"]["skill_list"], "schedule": "0 3 * * *"}}
    workspace = persistent(tmp_path, {"experiments": experiments, "default_experiment": "nightly"})
    create_run_for_test(workspace.instance, job_name=TEACHING_LOOP_JOB, status=DagsterRunStatus.STARTED,
                        tags={"dagster/partition": "arithmetic|nightly"})
    result = workspace.defs.resolve_schedule_def("nightly_schedule")(build_schedule_context(instance=workspace.instance))
    assert isinstance(result, SkipReason) and "arithmetic|nightly" in result.skip_message


def test_there_is_one_job_per_iteration_besides_the_whole_loop(workspace):
    names = {job.name for job in workspace.defs.jobs}
    assert {FOUNDATIONS_JOB, TEACHING_LOOP_JOB, *(iteration_job_name(t) for t in range(3))} <= names


# -- automation --------------------------------------------------------------------------------
def test_without_automated_experiments_the_sensor_says_so(workspace):
    result = evaluate_sensor(workspace)
    assert isinstance(result, SkipReason) and "automation: eager" in result.skip_message


def test_the_sensor_starts_an_automated_experiment_with_its_foundations_once(tmp_path):
    workspace = make_workspace(tmp_path, AUTOMATED)
    result = evaluate_sensor(workspace)
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [(FOUNDATIONS_JOB, "arithmetic")]
    # While that run is in progress, nothing else is launched for the partition.
    create_run_for_test(workspace.instance, job_name=FOUNDATIONS_JOB, status=DagsterRunStatus.STARTED,
                        tags={"dagster/partition": "arithmetic"})
    waiting = evaluate_sensor(workspace)
    assert isinstance(waiting, SkipReason) and "in progress" in waiting.skip_message


@pytest.mark.parametrize("status", [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTED])
def test_the_sensor_launches_nothing_for_a_partition_whose_run_is_queued_or_in_progress(tmp_path, status):
    workspace = make_workspace(tmp_path, AUTOMATED)
    workspace.run_foundations()
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    # A queued run carries where its job comes from (the queue launches it from there).
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__)),
                                                    "__repository__"), TEACHING_LOOP_JOB)
    run = create_run_for_test(workspace.instance, job_name=TEACHING_LOOP_JOB, status=status, remote_job_origin=origin,
                              tags={"dagster/partition": "arithmetic|skill_list"})
    assert workspace.instance.get_run_by_id(run.run_id).status == status
    waiting = evaluate_sensor(workspace)
    assert isinstance(waiting, SkipReason) and "arithmetic|skill_list is queued or in progress" in waiting.skip_message


@pytest.mark.parametrize(
    ("status", "tags", "expected"),
    [
        # Dagster's automatic retry creates its run, then queues it: a run launched in between would queue behind it.
        (DagsterRunStatus.NOT_STARTED, {}, "is created but not queued yet; waiting for it"),
        # A run whose process died, which the daemon will retry (run_retries set dagster/will_retry).
        (DagsterRunStatus.FAILURE, {"dagster/will_retry": "true"}, "the daemon retries it from the failed step"),
    ],
)
def test_the_sensor_waits_for_a_run_about_to_be_queued_or_retried(tmp_path, status, tags, expected):
    workspace = make_workspace(tmp_path, AUTOMATED)
    workspace.run_foundations()
    request = evaluate_sensor(workspace).run_requests[0]
    assert request.tags["dagster/max_retries"] == "1"  # what makes a run whose process died retried at all
    run = create_run_for_test(workspace.instance, job_name=TEACHING_LOOP_JOB, status=status,
                              tags={"dagster/partition": "arithmetic|skill_list", **tags})
    waiting = evaluate_sensor(workspace)
    assert isinstance(waiting, SkipReason) and f"run {run.run_id}" in waiting.skip_message
    assert expected in waiting.skip_message


def test_a_failed_iteration_stops_the_chain_with_the_reason(tmp_path):
    workspace = make_workspace(tmp_path, AUTOMATED)
    workspace.run_foundations()
    request = evaluate_sensor(workspace).run_requests[0]
    assert (request.job_name, request.partition_key) == (TEACHING_LOOP_JOB, loop_partition_key("arithmetic", "skill_list"))
    shutil.rmtree(workspace.home / "checkpoints" / "arithmetic" / "base")  # iteration 0 cannot evaluate it
    failed = workspace.defs.resolve_job_def(request.job_name).execute_in_process(
        partition_key=request.partition_key, instance=workspace.instance, tags=request.tags, raise_on_error=False
    )
    assert not failed.success
    stopped = evaluate_sensor(workspace)
    assert isinstance(stopped, SkipReason)
    assert f"stopped at iteration_0, run {failed.run_id} failed" in stopped.skip_message


def execute(workspace, request):
    """A sensor's run request, executed in process as the daemon's run worker would."""
    return workspace.defs.resolve_job_def(request.job_name).execute_in_process(
        partition_key=request.partition_key, instance=workspace.instance, tags=request.tags,
        asset_selection=request.asset_selection, raise_on_error=False,
    )


@pytest.mark.slow
def test_an_automated_experiment_runs_its_foundations_then_every_iteration_in_one_run(tmp_path):
    workspace = make_workspace(tmp_path, AUTOMATED)
    launched = []
    for _ in range(4):  # foundations, the loop, then nothing
        result = evaluate_sensor(workspace)
        if isinstance(result, SkipReason):
            break
        (request,) = result.run_requests
        launched.append((request.job_name, request.tags.get("dataenvgym/stage")))
        assert execute(workspace, request).success
    assert launched == [(FOUNDATIONS_JOB, "foundations"), (TEACHING_LOOP_JOB, "iteration_0")]
    assert "every iteration is materialised" in result.skip_message


@pytest.mark.slow
def test_a_chain_stopped_mid_loop_resumes_from_its_first_incomplete_iteration(tmp_path):
    workspace = make_workspace(tmp_path, AUTOMATED)
    workspace.run_foundations()
    assert workspace.run_loop(asset_selection=[key for t in (0, 1) for key in iteration_asset_keys(workspace, t)]).success
    (request,) = evaluate_sensor(workspace).run_requests
    assert (request.job_name, request.tags["dataenvgym/stage"]) == (TEACHING_LOOP_JOB, "iteration_2")
    assert set(request.asset_selection) == set(iteration_asset_keys(workspace, 2))
    assert execute(workspace, request).success
    assert "every iteration is materialised" in evaluate_sensor(workspace).skip_message


# -- re-runs -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_rerun_materialises_only_what_is_missing_or_older_than_its_inputs(workspace):
    # Its own experiment: the shared `completed` one is re-materialised in part by other tests.
    workspace.run_foundations()
    assert workspace.run_loop().success
    loop = loop_partition_key("arithmetic", "skill_list")

    def stale() -> list:
        return plan_job(workspace.defs, workspace.instance, TEACHING_LOOP_JOB, loop).stale

    assert plan_job(workspace.defs, workspace.instance, FOUNDATIONS_JOB, "arithmetic").stale == []
    assert stale() == []
    forced = plan_job(workspace.defs, workspace.instance, TEACHING_LOOP_JOB, loop, force=True)
    assert len(forced.stale) == forced.total == 18

    # A newer input makes what reads it stale, and nothing upstream or beside it.
    assert workspace.run_loop(asset_selection=[iteration_key(1, "validation_evaluation")]).success
    newer = stale()
    assert iteration_key(2, "environment_state") in newer and iteration_key(2, "test_evaluation") in newer
    assert not {iteration_key(1, "validation_evaluation"), iteration_key(1, "student_checkpoint"),
                iteration_key(1, "test_evaluation"), iteration_key(0, "test_evaluation")} & set(newer)
    assert workspace.run_loop(asset_selection=newer).success
    assert stale() == []


# -- an unusable home --------------------------------------------------------------------------
def test_a_home_under_a_regular_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "file" / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(write_catalog(tmp_path / "experiments.yaml")))
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dataenvgym: DATAENVGYM_HOME=")
    assert "is not a usable folder" in error and "set DATAENVGYM_HOME to a writable directory" in error
    assert "Traceback" not in error


def test_the_instance_gets_run_monitoring_unless_it_has_its_own_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["instance"]) == 0
    settings = tmp_path / "home" / "dagster" / "dagster.yaml"
    assert settings.read_text() == INSTANCE_SETTINGS and "run_monitoring" in INSTANCE_SETTINGS
    settings.write_text("telemetry:\n  enabled: false\n")
    assert main(["instance"]) == 0
    assert settings.read_text() == "telemetry:\n  enabled: false\n"


def test_an_unedited_instance_file_of_an_earlier_version_gets_run_retries(tmp_path, monkeypatch):
    from dagster import DagsterInstance

    from dataenvgym_dagster.defs.instance import PREVIOUS_SETTINGS

    monkeypatch.setenv("DATAENVGYM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = tmp_path / "home" / "dagster" / "dagster.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text(PREVIOUS_SETTINGS[0])  # what the version before run retries wrote
    assert "run_retries" not in settings.read_text()
    assert main(["instance"]) == 0
    assert settings.read_text() == INSTANCE_SETTINGS
    with DagsterInstance.from_config(str(settings.parent)) as instance:
        # Dagster reads it: retries on, none by default (only runs tagged dagster/max_retries), never after an asset failed.
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 0
        assert instance.run_retries_retry_on_asset_or_op_failure is False


# -- damaged warehouse files -------------------------------------------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damaged_home(tmp_path: Path) -> Path:
    warehouse = Warehouse(tmp_path / "home")
    rows = pl.DataFrame({"domain": ["arithmetic"], "split": ["test"], "example_id": ["e1"], "skill": ["a"],
                         "question": ["1+1"], "answer": ["2"], "payload": ["{}"]})
    warehouse.write("benchmark_problems", ["arithmetic", "benchmark_splits"], rows)
    evaluation = warehouse.tables / "evaluation_results" / "arithmetic" / "skill_list" / "it1_test_eval.parquet"
    evaluation.parent.mkdir(parents=True)
    shutil.copy(warehouse.tables / "benchmark_problems" / "arithmetic" / "benchmark_splits.parquet", evaluation)
    truncate(evaluation)
    return warehouse.home


def test_doctor_names_each_damaged_file_with_the_asset_and_partition_to_redo(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAENVGYM_HOME", str(damaged_home(tmp_path)))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "it1_test_eval.parquet (evaluation_results) is damaged" in out
    assert "Re-materialise it1_test_eval for partition arithmetic|skill_list" in out
    assert "benchmark_splits" not in out  # the readable file is not reported


def test_compare_over_a_damaged_file_says_which_partition_to_redo_instead_of_crashing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAENVGYM_HOME", str(damaged_home(tmp_path)))
    assert main(["compare"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dataenvgym: a warehouse query failed because of damaged files")
    assert "it1_test_eval for partition arithmetic|skill_list" in error


def test_a_write_is_verified_as_readers_will_see_it(tmp_path):
    warehouse = Warehouse(tmp_path)
    path = warehouse.write("skill_mappings", ["arithmetic", "skill_list", "iteration_1"], pl.DataFrame(
        {"domain": ["arithmetic"], "experiment": ["skill_list"], "iteration": [1], "previous_version": ["a"],
         "version": ["b"], "old_skill": ["x"], "new_skill": ["y"], "share": [1.0]}))
    truncate(path)
    with pytest.raises(DamagedTableFileError, match="it1_skill_taxonomy for partition arithmetic|skill_list"):
        warehouse.check()


# -- runs whose process was killed ---------------------------------------------------------------
def test_a_run_whose_process_died_is_marked_failed_with_the_reason(workspace):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    run = create_run_for_test(workspace.instance, job_name=TEACHING_LOOP_JOB, status=DagsterRunStatus.STARTED,
                              tags={PID_TAG: str(dead.pid), HOST_TAG: socket.gethostname()})
    alive = create_run_for_test(workspace.instance, job_name=TEACHING_LOOP_JOB, status=DagsterRunStatus.STARTED,
                                tags={PID_TAG: str(__import__("os").getpid()), HOST_TAG: socket.gethostname()})
    assert fail_abandoned_runs(workspace.instance) == [run.run_id]
    assert workspace.instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert workspace.instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED


def test_the_daemon_sensor_also_fails_runs_whose_process_died(tmp_path):
    import socket

    workspace = make_workspace(tmp_path, AUTOMATED)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = create_run_for_test(workspace.instance, job_name=FOUNDATIONS_JOB, status=DagsterRunStatus.STARTED,
                              tags={PID_TAG: str(dead.pid), HOST_TAG: socket.gethostname(), "dagster/partition": "arithmetic"})
    result = evaluate_sensor(workspace)  # the dead run no longer holds the partition
    assert workspace.instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert isinstance(result, SkipReason) and f"run {run.run_id} failed" in result.skip_message


def test_a_run_request_names_the_experiment_and_seed(tmp_path):
    workspace = make_workspace(tmp_path, AUTOMATED)
    request: RunRequest = evaluate_sensor(workspace).run_requests[0]
    assert request.tags[EXPERIMENT_TAG] == "skill_list" and request.tags[SEED_TAG] == "0"


def test_definitions_load_without_a_beta_warning():
    result = subprocess.run(
        [sys.executable, "-W", "error::Warning", "-c", "import dataenvgym_dagster.definitions"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert "BetaWarning" not in result.stderr, result.stderr[-2000:]


def test_definitions_build_for_the_default_catalogue():
    assert build_definitions().resolve_sensor_def(SENSOR) is not None


# -- what the UI says --------------------------------------------------------------------------
def test_every_asset_description_names_its_iteration_and_what_a_partition_is(workspace):
    graph = workspace.defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        description, group = graph.get(key).description, graph.get(key).group_name
        if group.startswith("iteration_"):
            assert description.startswith(f"Iteration {group.removeprefix('iteration_')}: ")
            assert "one domain × one experiment" in description and "`skill_list`, the default experiment" in description
        elif group == "foundations":
            assert description.startswith("Foundations (shared by every experiment): ") and "one domain" in description
        else:  # the reports group (the leaderboard) reads every partition's rows
            assert group == "reports" and "leaderboard" in description


def test_learning_curves_come_as_sparklines_short_enough_to_show_inline():
    from dataenvgym_dagster.defs.metadata import INLINE_MARKDOWN_LIMIT, sparklines

    skills = [f"category_{i}/a_rather_long_skill_name_{i}" for i in range(12)]
    curves = pl.DataFrame({"iteration": list(range(10)) * 12, "skill": [s for s in skills for _ in range(10)],
                           "accuracy": [t / 9 for t in range(10)] * 12})
    text = sparklines(curves)
    assert len(text) < INLINE_MARKDOWN_LIMIT
    assert "▁" in text and "█" in text and "0→100% category_0/a_rather_long_skill_name_0" in text


def test_the_learning_curve_plot_is_small_enough_to_show_inline_and_decodes():
    from dataenvgym_dagster.defs.metadata import INLINE_MARKDOWN_LIMIT, learning_curve_thumbnail

    for iterations in (1, 4, 40):
        curves = pl.DataFrame({"iteration": [t for t in range(iterations) for _ in range(12)],
                               "skill": [f"s{k}" for _ in range(iterations) for k in range(12)],
                               "accuracy": [((t * 7 + k * 3) % 10) / 9 for t in range(iterations) for k in range(12)]})
        text = learning_curve_thumbnail(curves)
        assert len(text) < INLINE_MARKDOWN_LIMIT
        encoded = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)\n\n(.*)", text, re.S)
        assert encoded is not None, text[:120]
        image = Image.open(io.BytesIO(base64.b64decode(encoded.group(1))))
        assert image.format == "PNG" and image.width >= 80
        assert encoded.group(2).endswith(f"(iterations 0–{iterations - 1})" if iterations > 1 else "(iteration 0)")


def test_with_these_settings_a_tagged_run_is_retried_when_its_process_died_but_not_when_an_asset_failed(tmp_path):
    from dagster import DagsterInstance, Definitions, asset, define_asset_job

    from dataenvgym_dagster.defs.automation import MAX_RETRIES_TAG

    @asset
    def raises() -> None:
        raise ValueError("a genuine error in the asset")

    (tmp_path / "dagster.yaml").write_text(INSTANCE_SETTINGS + "telemetry:\n  enabled: false\n")
    job = Definitions(assets=[raises], jobs=[define_asset_job("fails", [raises])]).resolve_job_def("fails")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        failed = job.execute_in_process(instance=instance, raise_on_error=False, tags={MAX_RETRIES_TAG: "1"})
        assert instance.get_run_by_id(failed.run_id).tags.get("dagster/will_retry") == "false"
        died = instance.create_run_for_job(job, tags={MAX_RETRIES_TAG: "1"})
        instance.report_run_failed(died, "its process ended")  # what fail_abandoned_runs reports for a killed worker
        assert instance.get_run_by_id(died.run_id).is_complete_and_waiting_to_retry
        untagged = instance.create_run_for_job(job)
        instance.report_run_failed(untagged, "its process ended")  # e.g. a killed `dataenvgym run`: not retried
        assert not instance.get_run_by_id(untagged.run_id).is_complete_and_waiting_to_retry

"""`dataenvgym status`: what is missing or out of date for the partitions the catalogue runs (Dagster's UI counts
every domain × experiment pair as a partition and marks no partitioned asset stale), and the same answer in the UI:
each asset's `up_to_date` check, evaluated by the report_up_to_date sensor."""

import pytest
from dagster import AssetCheckSeverity, DagsterRunStatus, SkipReason, build_sensor_context
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from dataenvgym_dagster.defs import freshness
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import loop_partition_key
from dataenvgym_dagster.defs.status import experiment_status

from .conftest import ARITHMETIC_EXPERIMENTS_OF_TWO_DOMAINS, make_workspace


@pytest.mark.slow
def test_after_redoing_an_upstream_step_the_work_built_on_it_is_out_of_date_and_later_iterations_missing(workspace):
    workspace.run_foundations()
    iteration_0 = [iteration_key(0, name) for name in ("experiment_config", "student_checkpoint", "validation_evaluation", "test_evaluation")]
    assert workspace.run_loop(asset_selection=iteration_0).success
    foundations, loop = experiment_status(workspace.defs, workspace.instance, workspace.catalog)
    assert foundations.describe() == "arithmetic: up to date"
    assert not loop.stale and set(iteration_0).isdisjoint(loop.missing) and iteration_key(1, "skill_taxonomy") in loop.missing

    workspace.run_foundations()  # a new base student: iteration 0 was built on the old one

    foundations, loop = experiment_status(workspace.defs, workspace.instance, workspace.catalog)
    assert foundations.describe() == "arithmetic: up to date"
    assert {k.to_user_string() for k in loop.stale} == {"it0_checkpoint", "it0_val_eval", "it0_test_eval"}
    assert iteration_key(0, "experiment_config") not in loop.stale + loop.missing
    assert iteration_key(1, "generated_dataset") in loop.missing and iteration_key(2, "test_evaluation") in loop.missing
    assert loop.describe().startswith("arithmetic|skill_list: 3 out of date: it0_checkpoint, ")
    assert "never materialised: it1_skill_taxonomy, " in loop.describe()
    assert loop.why()[0] == "  it0_checkpoint: its input base_student was materialised after it"


def tick_with_cursor(workspace, cursor: str | None = None):
    """One evaluation of the report_up_to_date sensor after the one that left ``cursor``; its result and new cursor."""
    context = build_sensor_context(instance=workspace.instance, definitions=workspace.defs, cursor=cursor)
    return workspace.defs.resolve_sensor_def(freshness.SENSOR)(context), context.cursor


@pytest.mark.slow
def test_after_redoing_iteration_0_the_up_to_date_check_of_iteration_1_warns_and_names_the_newer_input(tmp_path):
    # skill_list runs on arithmetic only; Dagster counts tool_use|skill_list as a partition too.
    workspace = make_workspace(tmp_path, ARITHMETIC_EXPERIMENTS_OF_TWO_DOMAINS)
    workspace.run_foundations()
    jobs = {t: workspace.defs.resolve_job_def(f"iteration_{t}_job") for t in (0, 1)}
    assert workspace.run_loop(asset_selection=[key for t in (0, 1) for key in jobs[t].asset_layer.executable_asset_keys]).success

    reported, cursor = tick_with_cursor(workspace)
    checks = {event.asset_key.to_user_string(): event for event in reported.asset_events}
    assert all(event.check_name == "up_to_date" and event.passed for event in checks.values())
    # True counts over the valid partitions, and the pairs Dagster counts that are not experiments said as such.
    assert checks["it1_env_state"].metadata["materialised"].value == "1 of 1 valid partitions"
    assert checks["it2_env_state"].metadata["never materialised"].value == "arithmetic|skill_list"
    assert checks["it1_env_state"].metadata["not experiments"].value.startswith("1 of the 2 domain × experiment partitions")
    assert checks["base_student"].metadata["never materialised"].value == "tool_use"  # its foundations were never run
    assert "not experiments" not in checks["base_student"].metadata
    assert cursor.endswith(": every asset up to date")  # what the sensor's page shows
    assert isinstance(tick_with_cursor(workspace, cursor)[0], SkipReason)  # nothing new: not evaluated again

    redone = jobs[0].execute_in_process(partition_key=loop_partition_key("arithmetic", "skill_list"), instance=workspace.instance)
    assert redone.success

    # While a run is in progress the evaluation waits for it, rather than compete with it for the cores.
    in_progress = workspace.instance.add_run(DagsterRun(job_name="iteration_1_job", run_id=make_new_run_id(), status=DagsterRunStatus.STARTED))
    waiting, unchanged = tick_with_cursor(workspace, cursor)
    assert isinstance(waiting, SkipReason) and "in progress" in waiting.skip_message and unchanged == cursor
    workspace.instance.delete_run(in_progress.run_id)

    reported, cursor = tick_with_cursor(workspace, cursor)
    checks = {event.asset_key.to_user_string(): event for event in reported.asset_events}
    assert {key for key, event in checks.items() if not event.passed} == {"it1_env_state", "it1_data_plan", "it1_generated_data", "it1_checkpoint", "it1_val_eval", "it1_test_eval"}
    assert checks["it1_env_state"].severity == AssetCheckSeverity.WARN
    assert checks["it1_env_state"].description.startswith(
        "out of date in arithmetic|skill_list: its input it0_val_eval was materialised after it"
    )
    out_of_date = {key: event.metadata["out of date"].value for key, event in checks.items() if not event.passed}
    assert out_of_date["it1_checkpoint"] == "arithmetic|skill_list: its input it0_checkpoint was materialised after it"
    assert out_of_date["it1_data_plan"] == "arithmetic|skill_list: its input it1_env_state is to be redone"
    assert checks["it1_skill_taxonomy"].passed  # built from the benchmark only, which did not change
    assert cursor.endswith(": out of date: " + ", ".join(out_of_date))  # in graph order, on the sensor's page

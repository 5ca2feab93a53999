"""The loop end to end: real Dagster runs, real training of a micro student, a real warehouse."""

import base64
import re
import threading
from xml.etree import ElementTree

import polars as pl
import pytest
from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from dataenvgym_dagster.asset_names import parse_iteration_asset_name
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.loop.checkpoints import WEIGHTS_FILE
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .test_warehouse import hold_database_open

pytestmark = pytest.mark.slow


def query(workspace, sql: str) -> pl.DataFrame:
    with Warehouse(workspace.home).connect() as connection:
        return connection.sql(sql).pl()


def iteration_of(key: AssetKey) -> int:
    return parse_iteration_asset_name(key.path[-1])[0]


def test_a_whole_experiment_materialises_iteration_after_iteration(completed):
    records = completed.instance.get_records_for_run(
        completed.instance.get_runs(limit=1)[0].run_id, of_type=__import__("dagster").DagsterEventType.ASSET_MATERIALIZATION
    ).records
    keys = [r.event_log_entry.dagster_event.asset_key for r in records]
    # A taxonomy depends only on the benchmark (and the last taxonomy), so it may come early.
    order = [iteration_of(key) for key in keys if not key.path[-1].endswith("_skill_taxonomy")]
    assert order == sorted(order)
    assert set(order) == {0, 1, 2}


def test_every_iteration_lands_in_the_warehouse_once(completed):
    counts = query(completed, "SELECT iteration, split, count(*) AS n FROM evaluation_results GROUP BY ALL ORDER BY ALL")
    per_split = 4 * 12
    assert counts.rows() == [(t, split, per_split) for t in range(3) for split in ("test", "validation")]
    assert query(completed, "SELECT count(*) AS n FROM skill_accuracy WHERE iteration = 2 AND split = 'test'")["n"][0] == 12


def test_generated_examples_point_to_plan_entries_which_point_to_the_state(completed):
    joined = query(
        completed,
        """
        SELECT g.iteration, g.skill, p.count, s.accuracy, g.passed_quality_checks
        FROM generated_examples g
        JOIN data_generation_plans p USING (domain, experiment, iteration)
        JOIN environment_states s USING (domain, experiment, iteration)
        WHERE g.plan_entry_id = p.entry_id AND s.node = p.skill
        """,
    )
    assert len(joined) == query(completed, "SELECT count(*) AS n FROM generated_examples")["n"][0] == 2 * 96
    assert joined["passed_quality_checks"].all()


def test_the_plan_spends_the_budget_on_weaker_skills(completed):
    plan = query(
        completed,
        """SELECT p.count, s.accuracy FROM data_generation_plans p JOIN environment_states s
           ON s.node = p.skill AND s.iteration = p.iteration AND s.experiment = p.experiment WHERE p.iteration = 1""",
    )
    assert plan["count"].sum() == 96
    weakest, strongest = plan.sort("accuracy").row(0), plan.sort("accuracy").row(-1)
    assert weakest[0] >= strongest[0]


def test_lineage_says_what_each_checkpoint_was_trained_from(completed):
    lineage = query(completed, "SELECT source_kind, source, examples FROM lineage WHERE iteration = 2 ORDER BY source_kind")
    checkpoint_source = lineage.filter(pl.col("source_kind") == "checkpoint")["source"][0]
    assert checkpoint_source.endswith("skill_list/iteration_1")
    assert ("dataset", "it2_generated_data", 96) in lineage.rows()


def test_training_really_changes_the_student(completed):
    runs = query(completed, "SELECT iteration, steps, tokens, final_loss FROM training_runs ORDER BY iteration")
    assert runs["iteration"].to_list() == [1, 2]
    assert (runs["steps"] == 6).all()  # (96 targeted + 96 replay) / batch 32
    hashes = query(completed, "SELECT DISTINCT iteration, checkpoint_sha256 FROM evaluation_results ORDER BY iteration")
    assert hashes["checkpoint_sha256"].n_unique() == 3


def test_rematerialising_a_partition_replaces_its_rows(completed):
    before = query(completed, "SELECT count(*) AS n FROM evaluation_results")["n"][0]
    test_before = completed.instance.get_latest_materialization_event(AssetKey("it1_test_eval")).timestamp
    result = completed.run_loop(asset_selection=[AssetKey("it1_val_eval")])
    assert result.success
    assert query(completed, "SELECT count(*) AS n FROM evaluation_results")["n"][0] == before
    # The step that makes both evaluations of the iteration made the one asked for, and left the other alone.
    made = [(event.step_key, event.asset_key) for event in result.all_events if event.is_step_materialization]
    assert made == [("it1_evaluate", AssetKey("it1_val_eval"))]
    assert completed.instance.get_latest_materialization_event(AssetKey("it1_test_eval")).timestamp == test_before


def test_readers_and_a_held_database_do_not_break_a_writing_run(completed):
    warehouse = Warehouse(completed.home)
    expected = query(completed, "SELECT count(*) AS n FROM evaluation_results")["n"][0]
    seen, errors, done = [], [], threading.Event()

    def read_continuously():
        while not done.is_set():
            try:
                with warehouse.connect() as connection:
                    seen.append(connection.execute("SELECT count(*) FROM evaluation_results").fetchone()[0])
            except Exception as error:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(error)

    holder = hold_database_open(warehouse.database)
    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        result = completed.run_loop(
            asset_selection=[iteration_key(2, f"{split}_evaluation") for split in ("validation", "test")]
        )
    finally:
        done.set()
        reader.join()
        holder.communicate("")
    assert result.success
    assert not errors
    assert seen and set(seen) == {expected}  # never a half-written or doubled partition
    # Both evaluations, one step: it evaluated the validation split, then the test split.
    made = [(event.step_key, event.asset_key) for event in result.all_events if event.is_step_materialization]
    assert made == [("it2_evaluate", AssetKey("it2_val_eval")), ("it2_evaluate", AssetKey("it2_test_eval"))]
    progress = [m.user_message for m in completed.instance.all_logs(result.run_id) if m.user_message.endswith(" prompts")]
    assert progress and progress[0].startswith("validation: evaluated") and progress[-1].startswith("test: evaluated")


def test_a_changed_checkpoint_is_never_evaluated(completed):
    checkpoint = completed.home / "checkpoints" / "arithmetic" / "skill_list" / "iteration_2" / WEIGHTS_FILE
    original = checkpoint.read_bytes()
    try:
        checkpoint.write_bytes(original[:-8] + bytes(8))
        result = completed.run_loop(asset_selection=[AssetKey("it2_test_eval")], raise_on_error=False)
    finally:
        checkpoint.write_bytes(original)
    assert not result.success
    assert "has changed since it was materialised" in failure_message(result)


def test_a_missing_predecessor_iteration_is_named(workspace):
    result = workspace.run_loop(asset_selection=[AssetKey("it2_env_state")], raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert re.search(r"it1_\w+ has not been materialised for partition arithmetic\|skill_list", message)
    assert "materialise it first" in message


def test_the_retrain_from_base_recipe_trains_on_all_accumulated_data(completed):
    result = completed.run_loop(experiment="skill_list_no_state")
    assert result.success
    lineage = query(
        completed,
        "SELECT source, examples FROM lineage WHERE experiment = 'skill_list_no_state' AND iteration = 2 AND source_kind = 'dataset'",
    )
    assert sorted(lineage.rows()) == [("it1_generated_data", 96), ("it2_generated_data", 96)]
    plan = query(
        completed,
        """SELECT DISTINCT split_part(skill, '/', 1) AS category, sum(count) AS n FROM data_generation_plans
           WHERE experiment = 'skill_list_no_state' GROUP BY iteration, category""",
    )
    assert plan["n"].to_list() == [16] * 6  # 96 split evenly over 6 categories, blind to the state


def failure_message(result) -> str:
    failures = [event for event in result.all_events if event.is_failure]
    return "\n".join(str(event.event_specific_data.error) for event in failures if event.event_specific_data)


def test_the_report_tables_accuracy_and_answer_loss_per_skill_and_iteration(completed):
    from dataenvgym_dagster.report import skill_table, test_gain

    warehouse = Warehouse(completed.home)
    accuracy = skill_table(warehouse, "arithmetic", "skill_list")
    loss = skill_table(warehouse, "arithmetic", "skill_list", value="answer_loss")
    assert accuracy.columns == ["skill", "vali it0", "vali it1", "vali it2", "test it0", "test it1", "test it2"]
    assert accuracy["skill"].to_list()[-1] == "ALL" and len(accuracy) == 13
    assert (loss.drop("skill").min_horizontal() > 0).all()
    last, base, final = test_gain(warehouse, "arithmetic", "skill_list")
    assert last == 2 and 0 <= base <= 1 and 0 <= final <= 1


def test_each_test_evaluation_shows_a_per_skill_learning_curve_plot(completed):
    records = completed.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("it2_test_eval"), asset_partitions=["arithmetic|skill_list"]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata
    plot = completed.home / "plots" / "arithmetic" / "skill_list" / "learning_curves_iteration_2.svg"
    assert "learning_curves_png" not in metadata  # a long path widened the UI's value column past the window
    svg = ElementTree.parse(plot).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    # One line per skill of the taxonomy and the mean, each named, over iterations 0 to 2.
    names = [group.findtext("{http://www.w3.org/2000/svg}title") for group in svg.iter("{http://www.w3.org/2000/svg}g")]
    with Warehouse(completed.home).connect(tables=["evaluation_results"]) as connection:
        skills = connection.sql(
            "SELECT DISTINCT skill FROM evaluation_results WHERE experiment = 'skill_list' AND split = 'test' ORDER BY skill"
        ).fetchall()
    assert names == [skill for (skill,) in skills] + ["mean over skills"]
    assert all(len(line.get("points").split()) == 3 for line in svg.iter("{http://www.w3.org/2000/svg}polyline"))
    shown = metadata["learning_curves"].value
    assert shown == f"![learning curves](data:image/svg+xml;base64,{base64.b64encode(plot.read_bytes()).decode()})"
    inline = metadata["learning_curve"].value
    assert inline.startswith("![mean test accuracy by iteration](data:image/png;base64,") and len(inline) < 1000
    assert inline.endswith("(iterations 0–2)") and "mean test accuracy: " in inline


def test_a_blocking_check_guards_every_generated_dataset_against_test_questions(completed):
    graph = completed.defs.resolve_asset_graph()
    for iteration in (1, 2):
        check = AssetCheckKey(AssetKey(f"it{iteration}_generated_data"), "no_test_question_kept")
        assert graph.get_check_spec(check).blocking
        (record,) = completed.instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        assert record.event.dagster_event.event_specific_data.passed

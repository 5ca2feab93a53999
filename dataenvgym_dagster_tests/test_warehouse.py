import subprocess
import sys
import textwrap

import duckdb
import polars as pl
import pytest

from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse, WarehouseLockedError


def evaluation_rows(n: int, iteration: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "domain": ["arithmetic"] * n, "experiment": ["e"] * n, "iteration": [iteration] * n,
            "split": ["test"] * n, "example_id": [str(i) for i in range(n)], "skill": ["a/b"] * n,
            "question": ["1+1"] * n, "prediction": ["2"] * n, "reference": ["2"] * n,
            "correct": [i % 2 == 0 for i in range(n)], "score": [float(i % 2 == 0) for i in range(n)],
            "verdict": ["v"] * n, "metrics": ["{}"] * n, "completion": ["c"] * n,
            "answer_loss": [0.1] * n, "checkpoint_sha256": ["x"] * n,
        }
    )


def count(warehouse: Warehouse, view: str) -> int:
    with warehouse.connect() as connection:
        return connection.execute(f"SELECT count(*) FROM {view}").fetchone()[0]


def test_every_view_answers_before_any_data_exists(tmp_path):
    warehouse = Warehouse(tmp_path)
    for view in [*TABLES, "skill_accuracy", "accuracy_by_iteration"]:
        assert count(warehouse, view) == 0


def test_writing_a_partition_again_replaces_its_rows(tmp_path):
    warehouse = Warehouse(tmp_path)
    warehouse.write("evaluation_results", ["arithmetic", "e", "iteration_0_test_evaluation"], evaluation_rows(10))
    warehouse.write("evaluation_results", ["arithmetic", "e", "iteration_0_test_evaluation"], evaluation_rows(6))
    warehouse.write("evaluation_results", ["arithmetic", "e", "iteration_1_test_evaluation"], evaluation_rows(4, 1))
    assert count(warehouse, "evaluation_results") == 10
    with warehouse.connect() as connection:
        accuracy = connection.execute("SELECT iteration, n, n_correct FROM skill_accuracy ORDER BY iteration").fetchall()
    assert accuracy == [(0, 6, 3), (1, 4, 2)]


def test_views_under_a_key_prefix_read_that_experiments_files_alone(tmp_path):
    """What a step reads (its learning curves, ``dataenvgym run``'s report) stays the same size however
    many experiments the home holds, and a partition that has written nothing yet reads as empty."""
    warehouse = Warehouse(tmp_path)
    for experiment, n in (("e", 6), ("other", 4)):
        warehouse.write("evaluation_results", ["arithmetic", experiment, "it0_test_eval"], evaluation_rows(n).with_columns(experiment=pl.lit(experiment)))
    warehouse.write("evaluation_results", ["arithmetic", "e", "it1_test_eval"], evaluation_rows(3, 1))
    # A quote in a folder's name (the file names are SQL strings), under a second domain.
    warehouse.write("evaluation_results", ["math", "it's", "it0_test_eval"], evaluation_rows(2).with_columns(experiment=pl.lit("it's")))
    query = "SELECT experiment, iteration, count(*) FROM evaluation_results GROUP BY ALL ORDER BY ALL"
    with warehouse.connect(["evaluation_results"], under=["arithmetic", "e"]) as connection:
        assert connection.execute(query).fetchall() == [("e", 0, 6), ("e", 1, 3)]
    with warehouse.connect(under=["arithmetic", "e"]) as connection:  # the derived views over the scoped tables
        assert connection.execute("SELECT iteration, n FROM accuracy_by_iteration ORDER BY ALL").fetchall() == [(0, 6), (1, 3)]
    benchmark = evaluation_rows(5).select("domain", "split", "example_id", "skill", "question", answer="reference", payload="metrics")
    warehouse.write("benchmark_problems", ["arithmetic", "benchmark_splits"], benchmark)  # stored per domain
    warehouse.write("benchmark_problems", ["math", "benchmark_splits"], benchmark.with_columns(domain=pl.lit("math")))
    with warehouse.connect(["benchmark_problems"], under=["arithmetic", "e"]) as connection:  # the domain's, for any experiment
        assert connection.execute("SELECT domain, count(*) FROM benchmark_problems GROUP BY ALL").fetchall() == [("arithmetic", 5)]
    with warehouse.connect(["evaluation_results"], under=["math", "it's"]) as connection:
        assert connection.execute(query).fetchall() == [("it's", 0, 2)]
    with warehouse.connect(["evaluation_results"], under=["arithmetic", "not_run_yet"]) as connection:
        assert connection.execute(query).fetchall() == []
        assert "checkpoint_sha256" in [column[0] for column in connection.execute("DESCRIBE evaluation_results").fetchall()]
    assert count(warehouse, "evaluation_results") == 15  # without a prefix, every experiment's


@pytest.mark.parametrize("view", ["gain_by_policy", "leaderboard"])
def test_views_that_compare_experiments_refuse_to_answer_over_one(tmp_path, view):
    """Over one experiment's rows they would answer with one seed and no baseline: an error says why instead."""
    warehouse = Warehouse(tmp_path)
    warehouse.write("evaluation_results", ["arithmetic", "e", "it0_test_eval"], evaluation_rows(4))
    with warehouse.connect(under=["arithmetic", "e"]) as connection:
        with pytest.raises(duckdb.InvalidInputException, match=f"{view} compares experiments: query it without under="):
            connection.execute(f"FROM {view}").fetchall()
    assert count(warehouse, view) == 0  # unscoped, it answers (nothing has finished here)
    with pytest.raises(TypeError, match="a sequence of key parts"):
        warehouse.connect(under="arithmetic")


@pytest.mark.parametrize("part", ["..", "", ".", "e/../other", "*", "e[0]"])
def test_a_key_prefix_that_would_reach_other_experiments_is_refused(tmp_path, part):
    """``..``, an empty name or a pattern would read other experiments' rows as this one's."""
    warehouse = Warehouse(tmp_path)
    for experiment in ("e", "other"):
        warehouse.write("evaluation_results", ["arithmetic", experiment, "it0_test_eval"], evaluation_rows(3))
    with pytest.raises(ValueError, match="is not a key part"):
        warehouse.connect(["evaluation_results"], under=["arithmetic", part])


def test_connections_at_once_each_see_their_own_homes_views(tmp_path):
    first, second = Warehouse(tmp_path / "a"), Warehouse(tmp_path / "b")
    first.write("evaluation_results", ["arithmetic", "e", "iteration_0_test_evaluation"], evaluation_rows(10))
    second.write("evaluation_results", ["arithmetic", "e", "iteration_0_test_evaluation"], evaluation_rows(4))
    with first.connect() as one, second.connect(tables=["evaluation_results"]) as other:
        assert one.execute("SELECT count(*) FROM evaluation_results").fetchone() == (10,)
        assert other.execute("SELECT count(*) FROM evaluation_results").fetchone() == (4,)
        with pytest.raises(Exception, match="skill_accuracy"):  # asked for one table: no other view
            other.execute("SELECT * FROM skill_accuracy")
    with first.connect(tables=["benchmark_problems"]) as later:  # nothing left behind by the connections before
        with pytest.raises(Exception, match="evaluation_results"):
            later.execute("SELECT * FROM evaluation_results")


@pytest.mark.parametrize("child", ["queries", "exits"])
def test_a_forked_child_queries_and_exits_cleanly_after_its_parent_connected(tmp_path, child):
    # The process's database was inherited by a fork and closed at the child's exit: SIGSEGV.
    Warehouse(tmp_path).write("evaluation_results", ["arithmetic", "e", "iteration_0_test_evaluation"], evaluation_rows(3))
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from dataenvgym_dagster.machinery.warehouse import Warehouse
        warehouse = Warehouse(Path({str(tmp_path)!r}))
        count = lambda: warehouse.connect(tables=["evaluation_results"]).execute("SELECT count(*) FROM evaluation_results").fetchone()
        assert count() == (3,)
        pid = os.fork()
        if pid == 0:
            if {child!r} == "queries":
                assert count() == (3,)
            sys.exit(0)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        print("child", status, "parent", count())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "child 0 parent (3,)"


def test_rows_with_missing_columns_are_refused_with_their_names(tmp_path):
    with pytest.raises(ValueError, match=r"missing columns \['checkpoint_sha256'\]"):
        Warehouse(tmp_path).write("evaluation_results", ["k"], evaluation_rows(2).drop("checkpoint_sha256"))


def test_rows_of_the_wrong_type_are_refused(tmp_path):
    rows = evaluation_rows(2).with_columns(iteration=pl.lit("first"))
    with pytest.raises(pl.exceptions.InvalidOperationError):
        Warehouse(tmp_path).write("evaluation_results", ["k"], rows)


def test_views_are_created_once_then_left_alone(tmp_path):
    warehouse = Warehouse(tmp_path)
    assert warehouse.ensure_views() is True
    assert warehouse.ensure_views() is False


def hold_database_open(path):
    script = textwrap.dedent(
        f"""
        import duckdb, sys, time
        connection = duckdb.connect({str(path)!r})
        print("holding", flush=True)
        sys.stdin.read()
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    return process


def test_a_user_holding_the_database_open_blocks_only_view_changes_with_a_clear_error(tmp_path):
    warehouse = Warehouse(tmp_path)
    warehouse.ensure_views()
    holder = hold_database_open(warehouse.database)
    try:
        assert warehouse.ensure_views() is False  # current views: the file is never opened
        warehouse.write("evaluation_results", ["k"], evaluation_rows(3))  # data writes never need the lock
        assert count(warehouse, "evaluation_results") == 3
        (tmp_path / "warehouse.views.sha256").write_text("stale")
        with pytest.raises(WarehouseLockedError, match="held open for writing by another process"):
            warehouse.ensure_views(timeout_seconds=0.5)
    finally:
        holder.communicate("")
    assert warehouse.ensure_views() is True


def test_views_in_the_database_file_work_from_the_duckdb_client(tmp_path):
    import duckdb

    warehouse = Warehouse(tmp_path)
    warehouse.ensure_views()
    warehouse.write("evaluation_results", ["k"], evaluation_rows(4))
    with duckdb.connect(str(warehouse.database), read_only=True) as connection:
        assert connection.execute("SELECT sum(n) FROM skill_accuracy").fetchone()[0] == 4


def write_run(warehouse, experiment: str, environment: str, policy: str, seed: int, base: list[bool], final: list[bool], last: int = 2) -> None:
    warehouse.write(
        "experiment_runs", ["arithmetic", experiment, "config"],
        pl.DataFrame([{
            "domain": "arithmetic", "experiment": experiment, "name": experiment.rsplit("_seed", 1)[0], "environment": environment,
            "policy": policy, "policy_version": "v1", "uses_state": policy != "no_state", "teacher": "offline",
            "teacher_version": "v1", "discoverer": "gold", "seed": seed,
            "data_budget": 100, "recipe": "continue_with_replay", "settings": "{}",
        }]),
    )
    for iteration, correct in ((0, base), (last, final)):
        rows = [
            {"domain": "arithmetic", "experiment": experiment, "iteration": iteration, "split": "test", "example_id": f"t{i}",
             "skill": "s", "question": "q", "prediction": "p", "reference": "r", "correct": c,
             "score": float(c), "verdict": "v", "metrics": "{}", "completion": "c", "answer_loss": 0.1, "checkpoint_sha256": "x"}
            for i, c in enumerate(correct)
        ]
        warehouse.write("evaluation_results", ["arithmetic", experiment, f"iteration_{iteration}"], pl.DataFrame(rows))


def test_gain_by_policy_reproduces_table_2_with_an_interval_and_the_gain_over_no_state(tmp_path):
    warehouse = Warehouse(tmp_path)
    base = [True] * 2 + [False] * 8  # 20 %
    for seed in range(3):
        write_run(warehouse, f"tree_seed{seed}", "skill_tree", "explore_exploit", seed, base, [True] * (6 + seed) + [False] * (4 - seed))
        write_run(warehouse, f"blind_seed{seed}", "skill_tree", "no_state", seed, base, [True] * 4 + [False] * 6)
    write_run(warehouse, "tree_seed9", "skill_tree", "explore_exploit", 9, base, [False] * 10, last=1)  # still running
    with warehouse.connect() as connection:
        table = {row["policy"]: row for row in connection.sql("SELECT * FROM gain_by_policy").pl().iter_rows(named=True)}
    tree, blind = table["explore_exploit"], table["no_state"]
    assert (tree["seeds"], tree["iterations"], tree["uses_state"]) == (3, 2, True)
    assert tree["base_accuracy"] == pytest.approx(0.2) and tree["final_accuracy"] == pytest.approx(0.7)
    assert tree["gain"] == pytest.approx(0.5) and tree["gain_over_no_state"] == pytest.approx(0.3)
    assert tree["gain_ci_low"] < 0.5 < tree["gain_ci_high"]
    assert blind["gain"] == pytest.approx(0.2) and blind["gain_over_no_state"] == pytest.approx(0.0)
    with warehouse.connect() as connection:  # deterministic: the same interval on every query
        again = connection.execute("SELECT gain_ci_low FROM gain_by_policy WHERE policy = 'explore_exploit'").fetchone()[0]
    assert again == tree["gain_ci_low"]


def test_compare_says_why_a_policy_has_no_gain_over_no_state(tmp_path):
    from dataenvgym_dagster.report import gain_by_policy_markdown

    warehouse = Warehouse(tmp_path)
    write_run(warehouse, "tree_seed0", "skill_tree", "explore_exploit", 0, [False] * 10, [True] * 5 + [False] * 5)
    table = gain_by_policy_markdown(warehouse)
    assert table.splitlines()[2].endswith("| no no-state run |")
    assert "no no-state run: no finished run of the same environment's no_state policy with the same teacher and data budget (arithmetic skill_tree)" in table

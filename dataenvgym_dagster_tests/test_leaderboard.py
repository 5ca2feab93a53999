"""The leaderboard as a specification: statistics, pairing and comparability on hand-made warehouse rows.

Rows are written through the real warehouse (Parquet files, DuckDB views) into a temporary home;
gains are chosen so every figure can be checked by hand (10 test examples: one right answer is
one point of accuracy, 0.1).
"""

from __future__ import annotations

import math
import shutil

import polars as pl
import pytest
import yaml

from dataenvgym_dagster import leaderboard
from dataenvgym_dagster.cli import main
from dataenvgym_dagster.machinery.leaderboard_views import t_quantile
from dataenvgym_dagster.machinery.warehouse import TABLES, Warehouse

TEST_EXAMPLES = 10
T2 = t_quantile(2)  # 4.303: three seeds


def write_run(
    warehouse: Warehouse, name: str, policy: str, seed: int, base: int, final: int, *, environment: str = "skill_list",
    uses_state: bool = True, domain: str = "arithmetic", budget: int = 8000, iterations: int = 2, question_prefix: str = "q",
    kept: int = 100, version: str = "v1", engine_version: str = "e1",
) -> None:
    """One finished run: ``base`` then ``final`` of 10 test answers right, split evenly over two skills."""
    experiment = f"{name}_seed{seed}"
    warehouse.write("experiment_runs", [domain, experiment, "iteration_0__experiment_config"], pl.DataFrame([{
        "domain": domain, "experiment": experiment, "name": name, "environment": environment, "policy": policy,
        "policy_version": version, "uses_state": uses_state, "teacher": "offline", "teacher_version": engine_version,
        "discoverer": "gold", "seed": seed, "data_budget": budget,
        "recipe": "continue_with_replay", "settings": "{}",
    }]))
    for iteration, right in ((0, base), (iterations, final)):
        rows = [{
            "domain": domain, "experiment": experiment, "iteration": iteration, "split": "test", "example_id": f"t{i}",
            "skill": "add" if i % 2 else "sub", "question": f"{question_prefix}{i}", "prediction": "1", "reference": "1",
            "correct": i < right, "score": float(i < right), "verdict": "", "metrics": "{}", "completion": "",
            "answer_loss": 1.0, "checkpoint_sha256": "base-student-sha" if iteration == 0 else f"{experiment}-{iteration}",
        } for i in range(TEST_EXAMPLES)]
        warehouse.write("evaluation_results", [domain, experiment, f"iteration_{iteration}__test_evaluation"], pl.DataFrame(rows, schema=TABLES["evaluation_results"]))
    warehouse.write("generated_examples", [domain, experiment, "iteration_1__generated_dataset"], pl.DataFrame([{
        "domain": domain, "experiment": experiment, "iteration": 1, "example_id": f"g{i}", "skill": "add", "question": "",
        "answer": "", "payload": "{}", "plan_entry_id": "", "teacher": "offline", "passed_quality_checks": i < kept,
        "rejection_reason": None,
    } for i in range(kept + 5)], schema=TABLES["generated_examples"]))


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    """Suite ``t`` on arithmetic, skill_list, three seeds: a state-reading agent, two blind ones, a negative control."""
    warehouse = Warehouse(tmp_path / "home")
    for seed, (learnable, uniform, no_state, negative) in enumerate([(1, 0, 0, -3), (3, 1, 2, -1), (5, 0, 4, 1)]):
        write_run(warehouse, "t.skill_list.learnable", "learnable", seed, 4, 4 + learnable)
        write_run(warehouse, "t.skill_list.uniform", "uniform", seed, 4, 4 + uniform, uses_state=False)
        write_run(warehouse, "t.skill_list.no_state", "no_state", seed, 4, 4 + no_state, uses_state=False)
        write_run(warehouse, "t.skill_list.negative_control", "negative_control", seed, 4, 4 + negative)
    return warehouse


def row(board: leaderboard.Leaderboard, agent: str, frame: str = "ranked") -> dict:
    rows = getattr(board, frame).filter(pl.col("agent") == agent)
    assert len(rows) == 1, f"{agent}: {len(rows)} {frame} rows"
    return rows.row(0, named=True)


def test_gain_is_the_mean_over_seeds_with_a_student_t_interval(warehouse):
    learnable = row(leaderboard.load(warehouse), "learnable")
    # gains 0.1, 0.3, 0.5: mean 0.3, sample sd 0.2
    half = T2 * 0.2 / math.sqrt(3)
    assert learnable["seeds"] == 3 and learnable["seed_list"] == "0,1,2"
    assert learnable["base_accuracy"] == pytest.approx(0.4) and learnable["final_accuracy"] == pytest.approx(0.7)
    assert learnable["gain"] == pytest.approx(0.3)
    assert (learnable["gain_ci_low"], learnable["gain_ci_high"]) == (pytest.approx(0.3 - half), pytest.approx(0.3 + half))


def test_difference_to_the_best_blind_baseline_is_paired_by_seed(warehouse):
    board = leaderboard.load(warehouse)
    learnable = row(board, "learnable")
    # no_state (mean gain 0.2) beats uniform (0.033); paired with learnable by seed the differences are
    # 0.1, 0.1, 0.1: no spread, so the interval is a point, although both agents' gains vary a lot.
    assert learnable["best_blind"] == "no_state" and learnable["vs_blind_seeds"] == 3
    assert learnable["vs_blind"] == pytest.approx(0.1)
    assert learnable["vs_blind_ci_low"] == pytest.approx(0.1) and learnable["vs_blind_ci_high"] == pytest.approx(0.1)
    # The baseline is not compared with itself; the other blind agent is compared with it.
    assert row(board, "no_state")["vs_blind"] is None
    assert row(board, "uniform")["vs_blind"] == pytest.approx((0.0 - 0.1 - 0.4) / 3)


def test_the_negative_control_ranks_last_with_an_interval_below_the_blind_baseline(warehouse):
    board = leaderboard.load(warehouse)
    negative = row(board, "negative_control")
    assert negative["rank"] == 4
    assert negative["vs_blind_ci_high"] < 0
    assert list(board.ranked["agent"]) == ["learnable", "no_state", "uniform", "negative_control"]


def test_a_row_with_one_seed_has_no_interval(warehouse):
    write_run(warehouse, "t.open_ended.near_misses", "near_misses", 0, 4, 6, environment="open_ended")
    board = leaderboard.load(warehouse)
    near = row(board, "near_misses", "apart")  # one seed: not comparable with three-seed rows
    assert near["gain"] == pytest.approx(0.2)
    assert near["gain_ci_low"] is None and near["gain_ci_high"] is None
    assert "seeds 0 (ranked: 0,1,2)" in near["differs"]
    line = next(line for line in leaderboard.markdown(board).splitlines() if "near_misses" in line)
    assert "+20.0 |" in line and "[" not in line


def test_only_comparable_runs_are_ranked_together_and_the_others_say_what_differs(warehouse):
    for seed in (0, 1, 2):
        write_run(warehouse, "b.skill_list.learnable", "learnable_small_budget", seed, 4, 5, budget=2000)
        write_run(warehouse, "s.skill_list.learnable", "learnable_other_split", seed, 4, 5, question_prefix="other")
    board = leaderboard.load(warehouse)
    assert set(board.ranked["agent"]) == {"learnable", "no_state", "uniform", "negative_control"}
    assert row(board, "learnable_small_budget", "apart")["differs"] == "budget 2000 (ranked: 8000)"
    assert row(board, "learnable_other_split", "apart")["differs"].startswith("test split ")
    # A blind baseline of another budget is never the one an agent is compared with.
    assert row(board, "learnable_small_budget", "apart")["best_blind"] is None


def test_runs_of_a_drifting_engine_are_ranked_apart_from_the_unchanged_engines(warehouse):
    for seed in (0, 1, 2):  # an imperfect engine is another environment: never ranked with, nor compared to, the others
        write_run(warehouse, "d.skill_list.learnable", "learnable", seed, 4, 9, engine_version="e1+drift-abc123")
        write_run(warehouse, "d.skill_list.uniform", "uniform", seed, 4, 5, uses_state=False, engine_version="e1+drift-abc123")
    board = leaderboard.load(warehouse)
    assert set(board.ranked["engine"]) == {"offline@e1"}
    drifted = board.apart.filter(pl.col("agent") == "learnable").row(0, named=True)
    assert drifted["differs"] == "engine drift-abc123 (ranked: without drift)"
    assert drifted["best_blind"] == "uniform" and drifted["vs_blind"] == pytest.approx(0.4)


def test_two_versions_of_an_agent_never_share_a_row(warehouse):
    for seed in (0, 1, 2):
        write_run(warehouse, "t2.skill_list.learnable", "learnable", seed, 4, 9, version="v2")
    board = leaderboard.load(warehouse)
    versions = board.ranked.filter(pl.col("agent") == "learnable").sort("agent_version")
    assert list(versions["agent_version"]) == ["v1", "v2"] and list(versions["gain"]) == pytest.approx([0.3, 0.5])


def test_a_run_still_at_iteration_0_is_left_out(warehouse):
    warehouse.write("experiment_runs", ["arithmetic", "t.skill_list.learnable_seed9", "iteration_0__experiment_config"],
                    pl.DataFrame([{"domain": "arithmetic", "experiment": "t.skill_list.learnable_seed9", "name": "t.skill_list.learnable",
                                   "environment": "skill_list", "policy": "learnable", "policy_version": "v1", "uses_state": True,
                                   "teacher": "offline", "teacher_version": "e1", "discoverer": "gold", "seed": 9,
                                   "data_budget": 8000, "recipe": "", "settings": "{}"}]))
    assert row(leaderboard.load(warehouse), "learnable")["seed_list"] == "0,1,2"


def test_the_view_is_queryable_in_sql(warehouse):
    with warehouse.connect() as connection:
        agents = connection.sql("SELECT agent, rank FROM leaderboard ORDER BY rank").fetchall()
    assert agents[0] == ("learnable", 1)


# -- the CLI -------------------------------------------------------------------------------------
@pytest.fixture
def cli_home(warehouse, tmp_path, monkeypatch):
    """The warehouse as ``$DATAENVGYM_HOME``, with a catalogue whose suite ``t`` names its experiments."""
    catalog = {
        "iterations": 2, "default_experiment": "t.skill_list.learnable_seed0", "domains": {"arithmetic": {}}, "experiments": {},
        "suites": {"t": {"domains": ["arithmetic"], "environments": ["skill_list"],
                         "agents": ["learnable", "uniform", "no_state", "negative_control"], "seeds": [0, 1, 2]}},
    }
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(catalog))
    monkeypatch.setenv("DATAENVGYM_EXPERIMENTS", str(tmp_path / "experiments.yaml"))
    monkeypatch.setenv("DATAENVGYM_HOME", str(warehouse.home))
    monkeypatch.setenv("DAGSTER_HOME", str(warehouse.home / "dagster"))
    # Another agent outside the suite: `--suite t` leaves it out.
    for seed in (0, 1, 2):
        write_run(warehouse, "other.skill_list.weak_skills", "weak_skills", seed, 4, 9)
    return warehouse.home


def test_cli_markdown_ranks_the_suite(cli_home, capsys):
    assert main(["leaderboard", "--suite", "t"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | arithmetic | skill_list | learnable | v1 | reads | offline@e1 |" in out
    assert "+10.0 [+10.0, +10.0] ▲ vs no_state" in out
    assert "weak_skills" not in out
    assert main(["leaderboard"]) == 0
    assert "| 1 | arithmetic | skill_list | weak_skills | v1 |" in capsys.readouterr().out


def test_cli_csv_has_every_column_as_fractions(cli_home, capsys):
    assert main(["leaderboard", "--suite", "t", "--format", "csv"]) == 0
    table = pl.read_csv(capsys.readouterr().out.encode())
    assert len(table) == 4 and set(table["listed"]) == {"ranked"}
    assert {"gain_ci_low", "vs_blind", "comparable_key", "split_hash", "examples_kept"} <= set(table.columns)
    assert table.filter(pl.col("agent") == "learnable")["examples_kept"][0] == 100


def test_cli_refuses_an_unknown_suite_naming_the_known_ones(cli_home, capsys):
    assert main(["leaderboard", "--suite", "nope"]) == 2
    error = capsys.readouterr().err
    assert "unknown suite 'nope'" in error and "suites: t" in error


def test_cli_html_is_one_self_contained_page(cli_home, tmp_path):
    page = tmp_path / "board.html"
    assert main(["leaderboard", "--suite", "t", "--format", "html", "--output", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert "src=" not in text and "href=" not in text and "<script" not in text  # nothing fetched from elsewhere


@pytest.mark.ui
def test_the_html_page_renders_its_table_and_learning_curves_in_chromium(cli_home, tmp_path):
    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        pytest.fail("no chromium on PATH: install Debian's package (apt-get install -y chromium) or run `make test`, which does")
    page_file = tmp_path / "board.html"
    assert main(["leaderboard", "--suite", "t", "--format", "html", "--output", str(page_file)]) == 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            assert page.locator("table#ranked tbody tr").count() == 4
            assert page.locator("table#ranked tbody tr").first.inner_text().startswith("1\tarithmetic\tskill_list\tlearnable\tv1")
            means = page.locator("svg polyline.mean")
            assert means.count() == 4  # one learning-curve plot per agent
            box = means.first.bounding_box()
            assert box is not None and box["width"] > 100  # drawn across the plot, iteration 0 to the last
            assert page.locator("figure figcaption").first.inner_text().startswith("arithmetic · skill_list · learnable")
        finally:
            browser.close()


def test_the_leaderboard_asset_shows_the_table_in_its_metadata_and_writes_the_page(warehouse):
    from dagster import materialize

    from dataenvgym_dagster.defs.resources import TeachingHome
    from dataenvgym_dagster.defs.suites import leaderboard_report

    result = materialize([leaderboard_report], resources={"teaching": TeachingHome(home=str(warehouse.home))})
    metadata = result.asset_materializations_for_node("leaderboard_report")[0].metadata
    assert "| 1 | arithmetic | skill_list | learnable | v1 |" in metadata["leaderboard"].value
    assert metadata["ranked_rows"].value == 4
    assert (warehouse.home / "reports" / "leaderboard.html").read_text().startswith("<!DOCTYPE html>")


def test_the_output_file_is_replaced_whole_through_a_link_with_its_permissions(tmp_path):
    import os
    import stat

    from pathlib import Path

    from dataenvgym_dagster.suite_cli import write_output

    (tmp_path / "target.html").write_text("old")
    os.chmod(tmp_path / "target.html", 0o640)
    (tmp_path / "page.html").symlink_to("target.html")  # e.g. the page a web server serves
    write_output(tmp_path / "page.html", "new")
    assert (tmp_path / "page.html").is_symlink() and (tmp_path / "target.html").read_text() == "new"
    assert stat.S_IMODE((tmp_path / "target.html").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("page.html", "target.html")] == []  # no temporary left
    write_output(Path(os.devnull), "to a device: written, not replaced")
    assert Path(os.devnull).is_char_device()

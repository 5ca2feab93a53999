"""Dagster's `dg` CLI over this project, as configured in pyproject.toml ([tool.dg]): what CI and a user run.

`dg check defs` is the definitions' validation in CI; `dg list defs` lists them; `dg launch` materialises a
job's partition; workspace.yaml keeps loading the same code location for `dagster` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.cli import INSTANCE_SETTINGS
from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB

from .conftest import write_catalog

REPOSITORY = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    """A micro catalogue and an empty home, as variables for a `dg` process run from the repository root."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_SETTINGS + "telemetry:\n  enabled: false\n")
    return {
        **os.environ, "DATAENVGYM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
        "DATAENVGYM_EXPERIMENTS": str(write_catalog(tmp_path / "experiments.yaml")), "NO_COLOR": "1",
    }


def dg(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dg"), *arguments], cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600
    )


def test_dg_check_defs_validates_the_definitions_without_warnings(environment):
    result = dg(environment, "check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr
    for warning in ("SupersessionWarning", "BetaWarning", "does not match the virtual environment"):
        assert warning not in result.stdout + result.stderr


def test_dg_list_defs_lists_every_asset_and_job_of_the_definitions(environment):
    result = dg(environment, "list", "defs", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    expected = build_definitions(home=environment["DATAENVGYM_HOME"], experiments_file=Path(environment["DATAENVGYM_EXPERIMENTS"]))
    graph = expected.resolve_asset_graph()
    assert {asset["asset_key"] for asset in listed["assets"]} == {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {FOUNDATIONS_JOB, "teaching_loop_job", "iteration_0_job"} <= {job["name"] for job in listed["jobs"]}


@pytest.mark.slow
def test_dg_launch_materialises_a_jobs_partition_into_the_home(environment):
    result = dg(environment, "launch", "--job", FOUNDATIONS_JOB, "--partition", "arithmetic")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with DagsterInstance.from_config(environment["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        assert run.job_name == FOUNDATIONS_JOB and run.status.value == "SUCCESS"
    assert (Path(environment["DATAENVGYM_HOME"]) / "warehouse" / "benchmark_problems" / "arithmetic").is_dir()


def test_workspace_yaml_still_loads_the_same_code_location(environment):
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dataenvgym_dagster" in result.stdout + result.stderr

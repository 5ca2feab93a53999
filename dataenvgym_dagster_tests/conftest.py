"""Shared fixtures: a micro experiment catalogue and one real run of it through Dagster."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, Definitions, build_sensor_context

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB
from dataenvgym_dagster.defs.partitions import loop_partition_key, register_experiments
from dataenvgym_dagster.experiments import ExperimentCatalog, load_catalog

MICRO_TRAINING = {"learning_rate": 0.003, "batch_size": 32, "epochs": 1}
MICRO_CATALOG = {
    "iterations": 2,
    "default_experiment": "skill_list",
    "domains": {
        "arithmetic": {
            "benchmark": {"validation_per_skill": 4, "test_per_skill": 4, "seed": 0},
            "base_student": {
                "architecture": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
                "pretraining_examples": 400,
                "training": MICRO_TRAINING,
            },
        }
    },
    "experiments": {
        "skill_list": {"policy": "weak_skills", "data_budget": 96, "training": {"settings": MICRO_TRAINING}},
        "skill_list_no_state": {
            "policy": "no_state",
            "data_budget": 96,
            "training": {"recipe": "retrain_from_base", "settings": MICRO_TRAINING},
        },
    },
}


def write_catalog(path: Path, overrides: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({**MICRO_CATALOG, **(overrides or {})}))
    return path


@dataclass
class Workspace:
    """A home folder, its catalogue, definitions and a Dagster instance."""

    home: Path
    catalog: ExperimentCatalog
    defs: Definitions
    instance: DagsterInstance

    def run_foundations(self, domain: str = "arithmetic") -> None:
        result = self.defs.resolve_job_def(FOUNDATIONS_JOB).execute_in_process(partition_key=domain, instance=self.instance)
        assert result.success

    def run_loop(self, experiment: str = "skill_list", domain: str = "arithmetic", **kwargs):
        register_experiments(self.instance, [experiment])  # what the register_experiments sensor does
        return self.defs.resolve_job_def(TEACHING_LOOP_JOB).execute_in_process(
            partition_key=loop_partition_key(domain, experiment), instance=self.instance, **kwargs
        )


def tick(workspace: Workspace, sensor: str):
    """One evaluation of ``sensor``; the partitions it asks for are added to the instance, as the daemon does."""
    result = workspace.defs.resolve_sensor_def(sensor)(build_sensor_context(instance=workspace.instance, definitions=workspace.defs))
    for request in getattr(result, "dynamic_partitions_requests", None) or ():
        workspace.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def make_workspace(root: Path, overrides: dict | None = None) -> Workspace:
    """The micro catalogue (with ``overrides``) in its own file, read by the runs through their resource."""
    catalog_file = write_catalog(root / "experiments.yaml", overrides)
    catalog = load_catalog(catalog_file)
    home = root / "home"
    return Workspace(home, catalog, build_definitions(catalog, str(home), catalog_file), DagsterInstance.ephemeral())


@pytest.fixture(scope="session", autouse=True)
def _homes_outside_the_working_tree(tmp_path_factory: pytest.TempPathFactory):
    """Code that falls back to the default home (``./.dataenvgym``) writes to a temporary one instead."""
    home = tmp_path_factory.mktemp("default_home")
    saved = {name: os.environ.get(name) for name in ("DATAENVGYM_HOME", "DAGSTER_HOME")}
    os.environ["DATAENVGYM_HOME"], os.environ["DAGSTER_HOME"] = str(home), str(home / "dagster")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# A micro tool-use domain: a second domain, for runs on it and for partitions an experiment does not run.
TOOL_USE_DOMAIN = {
    "benchmark": {"validation_per_skill": 2, "test_per_skill": 2, "seed": 0},
    "student": {"generation": {"max_new_tokens": 56, "batch_size": 64}},
    "base_student": {
        "architecture": {
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "max_position_embeddings": 256,
        },
        "tokenizer_vocab_size": 256,
        "pretraining_examples": 300,
        "training": MICRO_TRAINING,
    },
}
# Two domains, and experiments that run on arithmetic only: Dagster counts both domains × each experiment
# as partitions, of which only the arithmetic ones are the catalogue's (valid) pairs.
ARITHMETIC_EXPERIMENTS_OF_TWO_DOMAINS = {
    "domains": {**MICRO_CATALOG["domains"], "tool_use": TOOL_USE_DOMAIN},
    "experiments": {name: {**settings, "domains": ["arithmetic"]} for name, settings in MICRO_CATALOG["experiments"].items()},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """vLLM's tests run where vLLM is installed (.venv-vllm, by `make test-vllm`); elsewhere they say where."""
    if importlib.util.find_spec("vllm") is not None:
        return
    elsewhere = pytest.mark.skip(reason="needs vLLM: `make test-vllm` runs it in .venv-vllm (vLLM's CPU build)")
    for item in items:
        if item.get_closest_marker("vllm"):
            item.add_marker(elsewhere)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._untracked_before = _untracked(Path(session.config.rootpath))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests write only under temporary directories: a new file in the working tree fails the session."""
    before = getattr(session.config, "_untracked_before", None)
    if before is None:
        return
    created = _untracked(Path(session.config.rootpath)) - before
    if created:
        print(f"\ntests wrote into the working tree: {sorted(created)[:10]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _untracked(root: Path) -> set[str]:
    """Files git does not track or ignore under ``root`` (empty outside a git checkout)."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--others", "--exclude-standard"], capture_output=True, text=True, check=False
    )
    return set(listed.stdout.split()) if listed.returncode == 0 else set()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh, empty workspace for tests that run part of the loop themselves."""
    return make_workspace(tmp_path)


@pytest.fixture(scope="session")
def completed(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The micro ``skill_list`` experiment, run once to completion (foundations, then every iteration)."""
    workspace = make_workspace(tmp_path_factory.mktemp("completed"))
    workspace.run_foundations()
    assert workspace.run_loop().success
    return workspace


# -- the LLM teacher -------------------------------------------------------------------------------
@pytest.fixture
def openai_server():
    """A local OpenAI-protocol server playing a competent arithmetic teacher, without faults until told."""
    from dataenvgym_dagster_tests.openai_server import OpenAITestServer

    with OpenAITestServer() as server:
        yield server

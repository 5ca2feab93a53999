"""Agents from outside the package run through Dagster like built-in ones, and are recorded by name and version.

One micro workspace (foundations once) runs: a pip-installed package of agents named by its entry
points, a plain module on ``PYTHONPATH`` named by import path, and a module whose plan the
environment refuses at iteration 2, which resumes after the fix.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dataenvgym_dagster.defs.jobs import TEACHING_LOOP_JOB, run_experiment
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import loop_partition_key, register_experiments
from dataenvgym_dagster.defs.resources import home_warehouse
from dataenvgym_dagster_tests.conftest import MICRO_TRAINING, make_workspace

pytestmark = pytest.mark.slow

PACKAGE = "dataenvgym_test_agents"
DISTRIBUTION = "dataenvgym-test-agents"
EXPERIMENT = {"data_budget": 64, "training": {"settings": MICRO_TRAINING}}

# The package's policy: the budget over the two weakest skills; its engine: the offline teacher, renamed.
PACKAGE_POLICIES = '''
from dataenvgym_dagster.agents import PolicyAction, PolicyContext, SkillListState, allocate, make_plan, PlanEntry


def two_weakest(state: SkillListState, context: PolicyContext):
    weakest = sorted(state.skills, key=lambda p: (p.accuracy, p.skill))[:2]
    counts = allocate(context.budget, {p.skill: 1.0 for p in weakest})
    entries = [PlanEntry(entry_id=f"iteration_{state.iteration}/{s}", skill=s, count=n, rationale="one of the two weakest")
               for s, n in counts.items()]
    actions = [PolicyAction(skill=p.skill, action="allocate", reward=p.reward, observed_accuracy=p.accuracy,
                            detail={"count": counts[p.skill]}) for p in weakest]
    return make_plan(state, "skill_list", "two_weakest", entries, actions)


two_weakest.environment = "skill_list"
'''
PACKAGE_ENGINES = '''
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher


class Tutor(OfflineTeacher):
    name = "tutor"

    def __init__(self, domain, greeting="hello"):
        super().__init__(domain)
        self.greeting = greeting
'''
PYPROJECT = f'''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{DISTRIBUTION}"
version = "0.3.1"

[project.entry-points."dataenvgym.policies"]
two_weakest = "{PACKAGE}.policies:two_weakest"

[project.entry-points."dataenvgym.engines"]
tutor = "{PACKAGE}.engines:Tutor"

[tool.setuptools]
packages = ["{PACKAGE}"]
'''

# A plain module: the whole budget on the weakest skill; at iteration 2 ``refusing`` asks for too much.
PLAIN = '''
from dataenvgym_dagster.agents import PlanEntry, PolicyAction, make_plan

OVERSPEND = {overspend}


def weakest(state, context):
    p = min(state.skills, key=lambda p: (p.accuracy, p.skill))
    count = context.budget * (2 if OVERSPEND and state.iteration == 2 else 1)
    return make_plan(state, "skill_list", "weakest", [PlanEntry(entry_id=f"w{{state.iteration}}", skill=p.skill, count=count, rationale="weakest")],
                     [PolicyAction(skill=p.skill, action="allocate", reward=p.reward, detail={{"count": count}})])
'''


def write_plain(folder: Path, name: str, overspend: bool) -> None:
    (folder / f"{name}.py").write_text(PLAIN.format(overspend=overspend))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def agent_package(tmp_path_factory):
    """The package of agents, built outside the repository and pip-installed into this environment."""
    root = tmp_path_factory.mktemp("agent_package")
    (root / PACKAGE).mkdir()
    (root / PACKAGE / "__init__.py").write_text("")
    (root / PACKAGE / "policies.py").write_text(PACKAGE_POLICIES)
    (root / PACKAGE / "engines.py").write_text(PACKAGE_ENGINES)
    (root / "pyproject.toml").write_text(PYPROJECT)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(root)], check=True, cwd=root)
    importlib.invalidate_caches()
    yield DISTRIBUTION
    subprocess.run([*pip, "uninstall", "-y", DISTRIBUTION], check=True)
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def agents_workspace(tmp_path_factory, agent_package):
    modules = tmp_path_factory.mktemp("plain_agents")
    write_plain(modules, "plain_agents", overspend=False)
    write_plain(modules, "refusing_agents", overspend=True)
    sys.path.insert(0, str(modules))  # what PYTHONPATH=<folder> does for a run
    workspace = make_workspace(tmp_path_factory.mktemp("agents"), {
        "default_experiment": "packaged",
        "experiments": {
            "packaged": {**EXPERIMENT, "policy": "two_weakest", "teacher": {"engine": "tutor", "options": {"greeting": "hi"}}},
            "plain": {**EXPERIMENT, "policy": "plain_agents:weakest"},
            "refused": {**EXPERIMENT, "policy": "refusing_agents:weakest"},
        },
    })
    workspace.run_foundations()
    yield workspace, modules
    sys.path.remove(str(modules))


def run(workspace, experiment: str):
    return run_experiment(workspace.defs, workspace.instance, "arithmetic", experiment, say=lambda line: None)


def rows(workspace, sql: str) -> list[tuple]:
    return home_warehouse(workspace.home).connect().sql(sql).fetchall()


def test_a_pip_installed_package_of_agents_runs_by_entry_point_name_and_is_recorded_by_version(agents_workspace):
    workspace, _ = agents_workspace
    assert all(result.success for result in run(workspace, "packaged"))
    assert rows(workspace, "SELECT policy, policy_version, uses_state, teacher, teacher_version FROM experiment_runs WHERE experiment = 'packaged'") == [
        ("two_weakest", "0.3.1", True, "tutor", "0.3.1")
    ]
    planned = rows(workspace, "SELECT iteration, policy, policy_version, count(*), sum(count) FROM data_generation_plans "
                              "WHERE experiment = 'packaged' GROUP BY ALL ORDER BY iteration")
    assert planned == [(1, "two_weakest", "0.3.1", 2, 64), (2, "two_weakest", "0.3.1", 2, 64)]
    assert rows(workspace, "SELECT DISTINCT teacher FROM generated_examples WHERE experiment = 'packaged'") == [("tutor",)]
    assert rows(workspace, "SELECT DISTINCT policy_version FROM policy_actions WHERE experiment = 'packaged'") == [("0.3.1",)]


def test_a_plain_module_on_the_path_runs_by_import_path_and_is_recorded_by_its_source_hash(agents_workspace):
    workspace, modules = agents_workspace
    assert all(result.success for result in run(workspace, "plain"))
    (version,) = rows(workspace, "SELECT DISTINCT policy_version FROM data_generation_plans WHERE experiment = 'plain'")
    import hashlib

    assert version[0] == hashlib.sha256((modules / "plain_agents.py").read_bytes()).hexdigest()[:12]
    assert rows(workspace, "SELECT policy, policy_version FROM experiment_runs WHERE experiment = 'plain'") == [("plain_agents:weakest", version[0])]
    assert rows(workspace, "SELECT iteration, sum(count) FROM data_generation_plans WHERE experiment = 'plain' GROUP BY ALL ORDER BY 1") == [(1, 64), (2, 64)]


def test_a_refused_plan_fails_its_iteration_keeps_the_earlier_one_and_the_run_resumes_after_the_fix(agents_workspace):
    workspace, modules = agents_workspace
    results = run(workspace, "refused")
    failure = results[-1]
    assert not failure.success
    (event,) = [e for e in failure.all_events if e.event_type_value == "STEP_FAILURE"]
    message = event.event_specific_data.error.to_string()
    assert "the skill_list environment refused the plan of policy 'refusing_agents:weakest' on arithmetic|refused iteration 2" in message
    assert "asks for 128 examples, over the budget of 64" in message
    refusal = rows(workspace, "SELECT iteration, action, detail FROM policy_actions WHERE experiment = 'refused' ORDER BY iteration")
    assert [(i, a) for i, a, _ in refusal] == [(1, "allocate"), (2, "refused")]
    assert json.loads(refusal[1][2])["examples_requested"] == 128
    trained_before = rows(workspace, "SELECT count(*) FROM training_runs WHERE experiment = 'refused' AND iteration = 1")

    write_plain(modules, "refusing_agents", overspend=False)
    resumed = run(workspace, "refused")
    assert all(result.success for result in resumed)
    done = {e.asset_key.to_user_string() for r in resumed for e in r.get_asset_materialization_events()}
    assert "it2_data_plan" in done and "it1_checkpoint" not in done
    assert rows(workspace, "SELECT count(*) FROM training_runs WHERE experiment = 'refused' AND iteration = 1") == trained_before
    assert rows(workspace, "SELECT iteration, action FROM policy_actions WHERE experiment = 'refused' ORDER BY iteration") == [(1, "allocate"), (2, "allocate")]


def test_an_agent_that_does_not_import_fails_the_run_naming_the_agent_experiment_and_iteration(tmp_path):
    broken = make_workspace(tmp_path, {
        "default_experiment": "broken", "experiments": {"broken": {**EXPERIMENT, "policy": "nowhere_to_be_found:policy"}},
    })
    register_experiments(broken.instance, ["broken"])
    failure = broken.defs.resolve_job_def(TEACHING_LOOP_JOB).execute_in_process(
        partition_key=loop_partition_key("arithmetic", "broken"), instance=broken.instance, raise_on_error=False,
        asset_selection=[iteration_key(0, "experiment_config")],
    )
    messages = [e.event_specific_data.error.to_string() for e in failure.all_events if e.event_type_value == "STEP_FAILURE"]
    assert any(
        "policy 'nowhere_to_be_found:policy' (import path) does not import" in m and "experiment 'broken'" in m and "iteration 0" in m
        for m in messages
    ), messages

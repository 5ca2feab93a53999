"""The LLM teacher in the real loop: Dagster runs the micro experiment against a faulty local server."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.teacher import TeacherResource, teacher_resource
from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.discovery_llm import LlmSkillDiscoverer
from dataenvgym_dagster.domain.teachers.llm import LlmTeacher
from dataenvgym_dagster.experiments import ExperimentSettings, load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG, MICRO_TRAINING, Workspace, write_catalog
from dataenvgym_dagster_tests.openai_server import Faults, OpenAITestServer

SECRET = "sk-loop-secret-do-not-store-42"
# Tolerance: with 30 % faults a call may still lose all its tries (rarely); the loop must go on.
LLM_EXPERIMENT = {
    "policy": "weak_skills", "teacher": "llm", "data_budget": 96, "shortfall_tolerance": 0.25,
    "training": {"settings": MICRO_TRAINING},
}


def llm_workspace(root: Path, server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch, llm: dict | None = None) -> Workspace:
    """The micro catalogue plus an ``llm`` experiment, with the teacher configured by environment variables only."""
    experiments = {**MICRO_CATALOG["experiments"], "llm": llm or LLM_EXPERIMENT}
    catalog_file = write_catalog(root / "experiments.yaml", {"experiments": experiments})
    for variable, value in {
        "DATAENVGYM_EXPERIMENTS": str(catalog_file),
        "DATAENVGYM_TEACHER_BASE_URL": server.base_url,
        "DATAENVGYM_TEACHER_MODEL": "test-teacher",
        "DATAENVGYM_TEACHER_API_KEY": SECRET,
        "DATAENVGYM_TEACHER_TIMEOUT_S": "0.5",
        "DATAENVGYM_TEACHER_BACKOFF_S": "0.005",
        "DATAENVGYM_TEACHER_PARSE_ATTEMPTS": "5",
        "DATAENVGYM_TEACHER_PRICE_INPUT": "0.15",
        "DATAENVGYM_TEACHER_PRICE_OUTPUT": "0.6",
    }.items():
        monkeypatch.setenv(variable, value)
    home = root / "home"
    monkeypatch.setenv("DATAENVGYM_HOME", str(home))  # for runs whose config replaces the resource's home
    catalog = load_catalog(catalog_file)
    return Workspace(home, catalog, build_definitions(catalog, str(home)), DagsterInstance.ephemeral())


def test_unset_resource_fields_come_from_the_environment_and_the_key_never_shows():
    environ = {"DATAENVGYM_TEACHER_MAX_CONCURRENCY": "4", "DATAENVGYM_TEACHER_STRUCTURED_OUTPUT": "false", "OPENAI_API_KEY": SECRET}
    endpoint = TeacherResource(model="configured").endpoint(environ)
    assert (endpoint.max_concurrency, endpoint.structured_output, endpoint.model) == (4, False, "configured")
    assert endpoint.api_key.get_secret_value() == SECRET and SECRET not in repr(endpoint)
    resource = teacher_resource("/home", environ)
    assert SECRET not in repr(resource)
    with pytest.raises(ValueError, match=r"DATAENVGYM_TEACHER_TIMEOUT_S='soon' is not a valid timeout_s"):
        TeacherResource().endpoint({"DATAENVGYM_TEACHER_TIMEOUT_S": "soon"})
    assert TeacherResource().endpoint({}).cache_mode == "live"


@pytest.mark.slow
def test_an_llm_experiment_completes_through_faults_and_rematerialises_without_calls(tmp_path, monkeypatch):
    server = OpenAITestServer(faults=Faults(rate=0.3, delay_s=1.0, seed=7), api_key=SECRET).start()
    try:
        workspace = llm_workspace(tmp_path, server, monkeypatch)
        workspace.run_foundations()
        first = workspace.run_loop("llm")
        assert first.success
        warehouse = Warehouse(workspace.home)
        ledger = warehouse.connect().sql("SELECT * FROM teacher_calls WHERE experiment = 'llm'").pl()
        assert set(ledger["iteration"]) == {1, 2} and not ledger["cache_hit"].any()
        assert ledger["attempts"].max() > 1, "a 30 % fault rate should have made some calls retry"
        assert (ledger["outcome"] == "ok").mean() > 0.9 and sum(server.injected[k] for k in server.injected if k != "ok") > 0
        examples = warehouse.connect().sql("SELECT * FROM generated_examples WHERE experiment = 'llm'").pl()
        assert set(examples["teacher"]) == {"llm"} and examples["passed_quality_checks"].sum() > 0

        calls = server.requests
        assert workspace.run_loop("llm").success
        assert server.requests == calls, "re-materialising with unchanged inputs must make no calls"
        ledger = warehouse.connect().sql("SELECT * FROM teacher_calls WHERE experiment = 'llm'").pl()
        assert ledger["cache_hit"].sum() == ledger.height // 2

        cost = warehouse.connect().sql("SELECT * FROM teacher_cost_per_accuracy_point WHERE experiment = 'llm'").pl()
        assert cost.height == 1 and cost["cost_usd"][0] > 0 and cost["final_iteration"][0] == 2

        server.stop()  # the network is off: replay the teacher's assets from the cache
        replay = workspace.run_loop(
            "llm", asset_selection=[iteration_key(t, "generated_dataset") for t in (1, 2)],
            run_config={"resources": {"teacher": {"config": {"cache_mode": "replay"}}}},
        )
        assert replay.success

        stored = b"".join(path.read_bytes() for path in workspace.home.rglob("*") if path.is_file())
        assert SECRET.encode() not in stored, "the API key must not reach the warehouse, cache or artefacts"
        for run in (first, replay):
            events = workspace.instance.all_logs(run.run_id)
            assert SECRET not in "".join(repr(event) for event in events), "the API key must not reach logs or metadata"
    finally:
        server.stop()


def test_the_resource_builds_the_llm_engine_and_discoverer_an_experiment_names(tmp_path):
    resource = TeacherResource(home=str(tmp_path), examples_per_call=7)
    settings = ExperimentSettings(teacher="llm", discoverer="llm")
    engine = resource.engine(ARITHMETIC, settings, experiment="e", iteration=1, log=print)
    discoverer = resource.discoverer(ARITHMETIC, settings, experiment="e", iteration=1, log=print)
    assert isinstance(engine, LlmTeacher) and engine.examples_per_call == 7
    assert isinstance(discoverer, LlmSkillDiscoverer)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        {"environment": "open_ended", "policy": "near_misses"},
        {"environment": "skill_tree", "policy": "explore_exploit"},
        {"environment": "skill_list", "policy": "learnable", "discoverer": "llm"},
    ],
    ids=["open_ended", "skill_tree", "skill_list_with_llm_skills"],
)
def test_the_llm_teacher_drives_every_environment(tmp_path, monkeypatch, settings):
    llm = {**LLM_EXPERIMENT, **settings, "shortfall_tolerance": 0.0}
    with OpenAITestServer() as server:
        workspace = llm_workspace(tmp_path, server, monkeypatch, llm)
        workspace.run_foundations()
        assert workspace.run_loop("llm").success
    with Warehouse(workspace.home).connect() as connection:
        purposes = set(connection.sql("SELECT DISTINCT purpose FROM teacher_calls").pl()["purpose"])
        plans = connection.sql("SELECT skill, parent_skill, similar_to FROM data_generation_plans WHERE experiment = 'llm'").pl()
        kept = connection.sql("SELECT count(*) AS n FROM generated_examples WHERE experiment = 'llm' AND passed_quality_checks").pl()
        taxonomy = connection.sql("SELECT DISTINCT discoverer, skill FROM skill_taxonomies WHERE experiment = 'llm'").pl()
    assert f"generate:{settings['environment']}" in purposes and kept["n"][0] > 0
    if settings["environment"] == "open_ended":
        assert (plans["similar_to"] == 1).all()
    if settings["environment"] == "skill_tree":
        assert "propose_subskills" in purposes and plans["parent_skill"].is_not_null().all()
    if settings.get("discoverer") == "llm":
        assert {"discover:label", "discover:group"} <= purposes
        assert set(taxonomy["discoverer"]) == {"llm"} and not set(taxonomy["skill"]) & set(ARITHMETIC.taxonomy.skills)
        assert set(plans["skill"]) <= set(taxonomy["skill"])  # the policy plans over the discovered skills

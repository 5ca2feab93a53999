"""The paper's LLM agents: an ``llm`` policy per environment, through the teacher client, checked like any plan."""

from __future__ import annotations

import json

import pytest
from dataenvgym_dagster.agents import PolicyContext, load_policy, plan_problems
from dataenvgym_dagster.defs.jobs import TEACHING_LOOP_JOB, run_experiment
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.defs.partitions import loop_partition_key
from dataenvgym_dagster.defs.resources import home_warehouse
from dataenvgym_dagster.domain.environments import ENVIRONMENTS, get_environment
from dataenvgym_dagster.domain.environments.llm import DECISION_ATTEMPTS, LlmDecisionError
from dataenvgym_dagster.domain.environments.prompts import PROMPT_VERSION
from dataenvgym_dagster.machinery.teacher import CacheMode, EndpointSettings, MemoryLedger, OpenAIChat, ReplyCache
from dataenvgym_dagster_tests.conftest import MICRO_TRAINING, make_workspace
from dataenvgym_dagster_tests.openai_server import OpenAITestServer, PolicyResponder
from dataenvgym_dagster_tests.test_environments import ENGINE, observe

BUDGET = 96
ACCURACY = {"addition/two_digit_carry": 0.2, "subtraction/borrow": 0.4, "modulo/by_one_digit": 0.5}


@pytest.fixture
def server():
    with OpenAITestServer(responder=PolicyResponder()) as running:
        yield running


def chat(server: OpenAITestServer, cache, mode: CacheMode = CacheMode.live, base_url: str | None = None) -> OpenAIChat:
    settings = EndpointSettings(
        base_url=base_url or server.base_url, model="test-policy", parse_attempts=1, max_attempts=2, backoff_initial_s=0.0,
        timeout_s=2.0, cache_mode=mode,
    )
    return OpenAIChat(settings, ReplyCache(cache), MemoryLedger())


def decide(environment: str, client: OpenAIChat, state=None):
    state = state or observe(environment, ACCURACY)
    policy = get_environment(environment).policies["llm"].policy
    return policy(state, PolicyContext(budget=BUDGET, seed=0, proposer=ENGINE, chat=client)), state


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_each_environments_llm_policy_turns_the_models_decision_into_a_plan_the_environment_accepts(environment, server, tmp_path):
    plan, state = decide(environment, chat(server, tmp_path))
    assert plan.policy == "llm" and 0 < plan.total <= BUDGET
    assert plan_problems(get_environment(environment), state, plan, BUDGET) == []
    prompt = server.bodies[0]["messages"][1]["content"]
    assert prompt.startswith(state.render())  # the model sees the state exactly as its text rendering
    if environment == "skill_list":
        assert {e.skill for e in plan.entries} == set(ACCURACY)
    if environment == "skill_tree":
        assert {a.action for a in plan.actions} == {"explore"} and all(e.parent_skill for e in plan.entries)
    if environment == "open_ended":
        assert all(len(e.similar_to) == 1 and e.similar_to[0].prediction for e in plan.entries)


def test_the_llm_policys_version_is_its_prompt_version_and_source_hash():
    version = load_policy("skill_tree", "llm").info.version
    assert version.startswith(PROMPT_VERSION + "-")


def test_a_reply_over_the_budget_is_sent_back_with_the_reason_and_the_corrected_reply_is_used(server, tmp_path):
    over = json.dumps({"allocations": [{"skill": "subtraction/borrow", "examples": BUDGET * 2, "rationale": "all of it"}]})
    server.responder.replies = [over]
    client = chat(server, tmp_path)
    plan, _ = decide("skill_list", client)
    assert plan.total <= BUDGET and server.responder.policy_prompts == 2
    retry = server.bodies[1]["messages"]
    assert retry[-2]["role"] == "assistant" and json.loads(retry[-2]["content"])["allocations"][0]["examples"] == BUDGET * 2
    assert f"asks for {BUDGET * 2} examples, over the budget of {BUDGET}" in retry[-1]["content"]
    (refused,) = [call for call in client.calls if call.outcome == "refused"]
    assert "over the budget" in refused.error and '"examples":192' in refused.error


def test_a_reply_naming_an_unknown_skill_every_time_fails_with_the_reply_and_the_reason(server, tmp_path):
    unknown = json.dumps({"trees": [{"skill": "astrology", "action": "explore", "examples": 10, "new_subskills": 1, "rationale": "?"}]})
    server.responder.replies = [unknown] * DECISION_ATTEMPTS
    client = chat(server, tmp_path)
    with pytest.raises(LlmDecisionError, match="refused 3 times on arithmetic\\|e iteration 1; last reasons: 'astrology' is not a top-level skill") as failure:
        decide("skill_tree", client)
    assert '"skill":"astrology"' in str(failure.value)
    refused = [call for call in client.calls if call.outcome == "refused"]
    assert len(refused) == DECISION_ATTEMPTS and all("astrology" in call.error for call in refused)


def test_a_reply_that_is_not_json_is_retried_with_the_parse_error(server, tmp_path):
    server.responder.replies = ["I think addition needs more practice."]
    client = chat(server, tmp_path)
    plan, _ = decide("skill_list", client)
    assert plan.total <= BUDGET and [call.outcome for call in client.calls] == ["unparsed", "refused", "ok"]
    assert "the reply is not a JSON object of the schema" in server.bodies[1]["messages"][-1]["content"]


def test_replay_with_the_endpoint_down_makes_no_request_and_the_same_plan(server, tmp_path):
    server.responder.replies = [json.dumps({"specs": [{"example_id": "nowhere", "examples": 5, "spec": "?"}]})]
    first, state = decide("open_ended", chat(server, tmp_path))
    requests = server.requests
    server.stop()
    again, _ = decide("open_ended", chat(server, tmp_path, CacheMode.replay, base_url="http://127.0.0.1:9/v1"), state)
    assert again == first and server.requests == requests


# -- through Dagster -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_each_llm_policy_runs_two_iterations_through_dagster_and_replays_offline_with_the_same_plans(tmp_path, monkeypatch):
    experiments = {
        f"llm_{environment}": {"environment": environment, "policy": "llm", "data_budget": BUDGET, "training": {"settings": MICRO_TRAINING}}
        for environment in ENVIRONMENTS
    }
    server = OpenAITestServer(responder=PolicyResponder()).start()
    try:
        for variable, value in {
            "DATAENVGYM_TEACHER_BASE_URL": server.base_url, "DATAENVGYM_TEACHER_MODEL": "test-policy",
            "DATAENVGYM_TEACHER_TIMEOUT_S": "2", "DATAENVGYM_TEACHER_BACKOFF_S": "0.005",
        }.items():
            monkeypatch.setenv(variable, value)
        workspace = make_workspace(tmp_path, {"default_experiment": "llm_skill_list", "experiments": experiments})
        monkeypatch.setenv("DATAENVGYM_HOME", str(workspace.home))
        for experiment in experiments:
            results = run_experiment(workspace.defs, workspace.instance, "arithmetic", experiment, say=lambda line: None)
            assert all(result.success for result in results), experiment
    finally:
        server.stop()
    warehouse = home_warehouse(workspace.home)
    planned = warehouse.connect().sql(
        "SELECT experiment, iteration, policy, policy_version, sum(count) FROM data_generation_plans GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    version = load_policy("skill_list", "llm").info.version
    assert [(e, i, p, v) for e, i, p, v, _ in planned] == [(e, i, "llm", version) for e in sorted(experiments) for i in (1, 2)]
    assert all(0 < total <= BUDGET for *_, total in planned)
    purposes = warehouse.connect().sql("SELECT DISTINCT purpose FROM teacher_calls WHERE purpose LIKE 'policy:%' ORDER BY 1").fetchall()
    assert purposes == [(f"policy:{environment}",) for environment in sorted(ENVIRONMENTS)]

    # Replay with the endpoint down: the plans are re-materialised from the cache, with no request.
    monkeypatch.setenv("DATAENVGYM_TEACHER_CACHE_MODE", "replay")
    requests = server.requests
    plans = [iteration_key(iteration, "data_generation_plan") for iteration in (1, 2)]
    for experiment in experiments:
        again = workspace.defs.resolve_job_def(TEACHING_LOOP_JOB).execute_in_process(
            partition_key=loop_partition_key("arithmetic", experiment), instance=workspace.instance, asset_selection=plans,
        )
        assert again.success
    assert server.requests == requests
    replanned = warehouse.connect().sql(
        "SELECT experiment, iteration, policy, policy_version, sum(count) FROM data_generation_plans GROUP BY ALL ORDER BY 1, 2"
    ).fetchall()
    assert replanned == planned

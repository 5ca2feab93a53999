"""The LLM teacher on tool use, over real HTTP to the local OpenAI-protocol test server."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

import pytest

from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry
from dataenvgym_dagster.domain.quality import check_examples
from dataenvgym_dagster.domain.teachers.llm import LlmTeacher
from dataenvgym_dagster.domain.tool_use import TOOL_USE
from dataenvgym_dagster.machinery.teacher import OpenAIChat, ReplyCache, WarehouseLedger
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.openai_server import OpenAITestServer, last_user_message
from dataenvgym_dagster_tests.test_llm_teacher_client import fast


@dataclass
class ToolUseResponder:
    """A tool-use teacher: requests and plans of the asked skill; every ``misnamed_every``-th plan
    calls the first tool's first argument by a name the catalogue does not have."""

    misnamed_every: int = 0

    def __call__(self, request: dict[str, Any]) -> str:
        prompt = last_user_message(request)
        rng = random.Random(request.get("seed", 0))
        skill = re.search(r"Skill: `([^`]+)`", prompt).group(1)
        count = int(re.search(r"Number of problems: (\d+)", prompt).group(1))
        problems = []
        for index in range(count):
            draft = TOOL_USE.sample(skill, rng)
            plan = [{"name": step["name"], "args": step["args"]} for step in draft.payload["plan"]]
            if self.misnamed_every and index % self.misnamed_every == 0:
                first = plan[0]["args"]
                plan[0]["args"] = {f"the_{name}": value for name, value in first.items()}
            problems.append({"request": draft.question, "plan": plan})
        return json.dumps({"problems": problems})


SKILLS = (("image+ml/object_detection>select_object", 6), ("api/get_location>get_weather", 4))


def generation_plan() -> DataGenerationPlan:
    entries = tuple(PlanEntry(entry_id=f"e{i}", skill=skill, count=count, rationale=f"{skill} is weak") for i, (skill, count) in enumerate(SKILLS))
    return DataGenerationPlan(domain="tool_use", experiment="llm", iteration=1, environment="skill_list", policy="test", entries=entries)


@pytest.fixture
def server():
    with OpenAITestServer(responder=ToolUseResponder()) as running:
        yield running


def teacher(server: OpenAITestServer, tmp_path) -> LlmTeacher:
    home = tmp_path / "home"
    ledger = WarehouseLedger(Warehouse(home), domain="tool_use", experiment="llm", iteration=1)
    return LlmTeacher(TOOL_USE, OpenAIChat(fast(server), ReplyCache(home / "teacher_cache"), ledger), examples_per_call=5)


def test_the_teacher_writes_requests_with_plans_that_the_catalogue_accepts(server, tmp_path):
    result = teacher(server, tmp_path).generate(generation_plan(), seed=0)
    assert (result.requested, result.produced, result.failures) == (10, 10, ())
    assert server.requests == 3  # 6 = 5 + 1, and 4
    assert all(TOOL_USE.verify(result.examples))
    weather = [e for e in result.examples if e.plan_entry_id == "e1"]
    assert {e.answer for e in weather} == {"get location > get weather"}
    assert weather[0].payload["plan"][1]["args"] == {"lon": "<node-0>.lon", "lat": "<node-0>.lat"}


def test_the_brief_carries_the_tool_catalogue_and_asks_for_the_plan_as_structured_output(server, tmp_path):
    teacher(server, tmp_path).generate(generation_plan(), seed=0)
    system = server.bodies[0]["messages"][0]["content"]
    assert "get weather(lon: text, lat: text) -> {objects: list[dict]}" in system
    assert all(tool.name in system for tool in TOOL_USE.catalogue)
    schema = json.loads(system.split("JSON schema, and nothing else:\n", 1)[1])
    item = schema["$defs"]["ToolUseItem"]
    assert set(item["required"]) == {"request", "plan"} and "ToolCall" in json.dumps(item["properties"]["plan"])
    # Calls run concurrently, so the plan's entries may reach the server in any order.
    assert any("Skill: `image+ml/object_detection>select_object`" in body["messages"][-1]["content"] for body in server.bodies)


def test_plans_with_arguments_the_tools_do_not_have_are_filtered_as_wrong_answers(server, tmp_path):
    server.responder = ToolUseResponder(misnamed_every=2)
    result = teacher(server, tmp_path).generate(generation_plan(), seed=0)
    benchmark = [result.examples[1].question.upper() + "!"]  # a near-equal benchmark request
    verdicts = check_examples(TOOL_USE, result.examples, planned_skills=[s for s, _ in SKILLS], benchmark_questions=benchmark)
    reasons = [v.reason for v in verdicts]
    assert reasons.count("wrong_answer") == 6  # entries 0..5 and 0..3, every second one, per call of 5
    assert reasons[1] == "benchmark_overlap"
    assert all(reason in (None, "wrong_answer", "benchmark_overlap", "duplicate") for reason in reasons)

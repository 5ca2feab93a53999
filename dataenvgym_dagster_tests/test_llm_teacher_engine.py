"""The LLM teacher and skill discoverer, with the real client and a local OpenAI-protocol server."""

from __future__ import annotations

import polars as pl
import pytest

from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.discovery import DiscoveredSkills
from dataenvgym_dagster.domain.discovery_llm import LlmSkillDiscoverer
from dataenvgym_dagster.domain.plans import DataGenerationPlan, PlanEntry, SimilarExample
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.domain.teachers.llm import GeneratedProblems, LlmTeacher
from dataenvgym_dagster.domain.types import Problem
from dataenvgym_dagster.experiments import ExperimentSettings
from dataenvgym_dagster.loop import steps
from dataenvgym_dagster.machinery.teacher import OpenAIChat, ReplyCache, WarehouseLedger
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster_tests.openai_server import ArithmeticResponder
from dataenvgym_dagster_tests.test_llm_teacher_client import fast


def plan(environment: str = "skill_list", counts=(("addition/one_digit", 7), ("comparison/two_digit", 3)), **entry) -> DataGenerationPlan:
    entries = tuple(
        PlanEntry(entry_id=f"e{i}", skill=skill, count=count, rationale=f"{skill} is weak", **entry)
        for i, (skill, count) in enumerate(counts)
    )
    return DataGenerationPlan(domain="arithmetic", experiment="llm", iteration=1, environment=environment, policy="test", entries=entries)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def teacher(server, home, **overrides) -> tuple[LlmTeacher, WarehouseLedger]:
    ledger = WarehouseLedger(Warehouse(home), domain="arithmetic", experiment="llm", iteration=1)
    chat = OpenAIChat(fast(server, **overrides), ReplyCache(home / "teacher_cache"), ledger)
    return LlmTeacher(ARITHMETIC, chat, examples_per_call=5), ledger


def prompts_sent(server) -> list[str]:
    return [body["messages"][-1]["content"] for body in server.bodies]


def test_entries_are_split_into_calls_and_every_example_is_labelled_with_its_entry(openai_server, home):
    engine, _ = teacher(openai_server, home)
    result = engine.generate(plan(), seed=3)
    assert openai_server.requests == 3  # 7 = 5 + 2, and 3
    assert (result.requested, result.produced, result.failures) == (10, 10, ())
    assert [e.example_id for e in result.examples][:7] == [f"e0/{i:05d}" for i in range(7)]
    assert {e.skill for e in result.examples if e.plan_entry_id == "e1"} == {"comparison/two_digit"}
    assert all(ARITHMETIC.verify(result.examples))


def test_the_prompt_follows_the_environment_and_tells_the_domain_format(openai_server, home):
    engine, _ = teacher(openai_server, home)
    engine.generate(plan("skill_list"), seed=0)
    similar = (SimilarExample(example_id="v1", question="47+38", reference="85", prediction="75"),)
    engine.generate(plan("open_ended", counts=(("addition/two_digit_carry", 2),), similar_to=similar), seed=0)
    engine.generate(plan("skill_tree", counts=(("addition/two_digit_carry", 2),), parent_skill="addition"), seed=0)
    sent = prompts_sent(openai_server)
    open_ended, skill_tree = sent[-2:]
    # The skill-list plan's calls run concurrently, so its entries reach the server in any order.
    skill_list = next(prompt for prompt in sent[:-2] if "Skill: `addition/one_digit`" in prompt)
    assert "addition/one_digit is weak" in skill_list
    assert "- 47+38 -> 85 (student: 75)" in open_ended and "same weakness" in open_ended
    assert "sub-skill of `addition`" in skill_tree
    system = openai_server.bodies[0]["messages"][0]["content"]
    assert "`17?42`" in system and "plain integer" in system and '"problems"' in system


def test_missing_examples_become_failures_naming_the_entry(openai_server, home):
    openai_server.responder = ArithmeticResponder(fraction=0.5)
    engine, _ = teacher(openai_server, home)
    result = engine.generate(plan(counts=(("addition/one_digit", 4),)), seed=0)
    assert result.produced == 2 and result.shortfall == 0.5
    (failure,) = result.failures
    assert (failure.entry_id, failure.missing) == ("e0", 2) and "2 of 4 problems" in failure.reason


def test_a_failed_call_costs_only_its_own_examples(openai_server, home):
    openai_server.faults.script = ["server_error"] * 2
    engine, _ = teacher(openai_server, home, max_attempts=2, max_concurrency=1)
    result = engine.generate(plan(), seed=0)
    assert result.produced == 5 and [(f.entry_id, f.missing) for f in result.failures] == [("e0", 5)]
    assert "HTTP 500" in result.failures[0].reason


def test_the_dataset_step_fails_when_the_teacher_falls_short_beyond_the_tolerance(openai_server, home):
    openai_server.responder = ArithmeticResponder(fraction=0.5)
    engine, _ = teacher(openai_server, home)
    settings = ExperimentSettings(teacher="llm", data_budget=10, shortfall_tolerance=0.2)
    benchmark = pl.DataFrame({"question": ["1+1"]})
    with pytest.raises(steps.GenerationShortfallError, match=r"teacher 'llm' produced \d+ of 10 requested .* teacher_calls"):
        steps.generated_dataset(ARITHMETIC, engine, plan(), settings, benchmark=benchmark, earlier_generated=[])


def test_every_call_lands_in_the_ledger_and_the_cost_view(openai_server, home):
    openai_server.faults.script = ["rate_limit"]
    engine, ledger = teacher(openai_server, home, max_concurrency=1, price_per_million_input_tokens=1.0, price_per_million_output_tokens=4.0)
    engine.generate(plan(), seed=0)
    engine.generate(plan(), seed=0)  # all from the cache: appended, not replacing
    warehouse = Warehouse(home)
    rows = warehouse.connect().sql("SELECT * FROM teacher_calls ORDER BY recorded_at").pl()
    assert rows.height == 6 and rows["cache_hit"].to_list() == [False] * 3 + [True] * 3
    assert rows["attempts"].to_list()[:3] == [2, 1, 1] and set(rows["purpose"]) == {"generate:skill_list"}
    assert set(rows["prompt_version"]) == {ledger.calls[0].prompt_version}
    cost = warehouse.connect().sql("SELECT * FROM teacher_cost_by_iteration").pl().row(0, named=True)
    assert (cost["calls"], cost["cache_hits"], cost["requests"]) == (6, 3, 4)
    assert cost["cost_usd"] == pytest.approx(rows["cost_usd"].sum()) and cost["cost_usd"] > 0


def test_subskill_proposals_are_new_names_under_the_skill(openai_server, home):
    engine, _ = teacher(openai_server, home)
    proposed = engine.propose_subskills("addition", ["addition/one_digit"], 2, seed=0)
    assert proposed == ["addition/two_digit_no_carry", "addition/two_digit_carry"]
    assert engine.propose_subskills("addition", [], 0, seed=0) == []


def test_the_llm_discoverer_builds_a_valid_taxonomy_and_assigns_every_question(openai_server, home):
    problems = ARITHMETIC.sources["procedural"].load(BenchmarkSpec(validation_per_skill=3, test_per_skill=1))["validation"]
    ledger = WarehouseLedger(Warehouse(home), domain="arithmetic", experiment="llm", iteration=1)
    chat = OpenAIChat(fast(openai_server), ReplyCache(home / "teacher_cache"), ledger)
    discovered = LlmSkillDiscoverer(chat, questions_per_call=10).discover("arithmetic", problems, previous=None)
    assert isinstance(discovered, DiscoveredSkills) and discovered.discoverer == "llm"
    assert set(discovered.assignments) == {p.example_id for p in problems}
    assert all(skill.count("/") == 1 for skill in discovered.taxonomy.skills)
    assert discovered.assignments["validation/comparison/two_digit/0000"] == "comparison/comparison_of_numbers"
    assert {"addition", "subtraction", "multiplication", "modulo", "comparison", "two"} == set(discovered.taxonomy.categories)
    assert {r.purpose for r in ledger.calls} == {"discover:label", "discover:group"}


def test_the_llm_discoverer_keeps_known_skills_in_their_categories(openai_server, home):
    problems = [Problem(example_id="q1", question="12+39", answer="51", skill="?"), Problem(example_id="q2", question="3?4", answer="<", skill="?")]
    previous = LlmSkillDiscoverer(_chat(openai_server, home)).discover("arithmetic", problems[:1], previous=None)
    previous = previous.model_copy(update={"taxonomy": previous.taxonomy.model_copy(update={"categories": {"sums": ("sums/addition_large",)}}),
                                           "assignments": {"q1": "sums/addition_large"}})
    discovered = LlmSkillDiscoverer(_chat(openai_server, home)).discover("arithmetic", problems, previous=previous)
    assert discovered.assignments == {"q1": "sums/addition_large", "q2": "comparison/comparison_of_numbers"}
    assert "Known skills (reuse one when it fits): addition_large" in prompts_sent(openai_server)[-2]


def test_questions_whose_labelling_failed_are_still_assigned(openai_server, home):
    openai_server.faults.script = ["malformed"] * 3
    problems = ARITHMETIC.sources["procedural"].load(BenchmarkSpec(validation_per_skill=1, test_per_skill=1))["validation"]
    discovered = LlmSkillDiscoverer(_chat(openai_server, home, parse_attempts=3)).discover("arithmetic", problems, previous=None)
    assert set(discovered.assignments.values()) == {"other/unlabelled"}


def _chat(server, home, **overrides) -> OpenAIChat:
    ledger = WarehouseLedger(Warehouse(home), domain="arithmetic", experiment="llm", iteration=1)
    return OpenAIChat(fast(server, **overrides), ReplyCache(home / "teacher_cache"), ledger)


def test_numeric_answers_are_read_as_text():
    reply = GeneratedProblems.model_validate({"problems": [{"question": "12+39", "answer": 51}]})
    assert reply.problems[0].answer == "51"

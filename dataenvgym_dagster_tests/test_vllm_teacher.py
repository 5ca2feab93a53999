"""vLLM as the teacher's endpoint: a real OpenAI-compatible vLLM server (CPU build) on a tiny random model.

Dagster runs the LLM skill discoverer and the LLM teacher against it: replies come through the
server's guided decoding (xgrammar), the ledger records the server's token counts, a reply that
breaks the schema is handled as the client handles any, and with the server stopped a replay
makes no request. The model is random but for a rigged preference for ``1`` (see ``vllm_server``), and the test bounds
the schema's strings, integers and lists with the client's generic settings
(``DATAENVGYM_TEACHER_MAX_STRING_LENGTH`` / ``_MAX_LIST_LENGTH``); the production reply models are
unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.loop.iterations import iteration_key
from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.discovery_llm import QuestionLabels, SkillGroups
from dataenvgym_dagster.domain.teachers import prompts
from dataenvgym_dagster.domain.teachers.chat import ChatMessage, ChatRequest
from dataenvgym_dagster.domain.teachers.llm import GeneratedProblems
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.machinery.teacher import CacheMode, EndpointSettings, MemoryLedger, OpenAIChat, ReplyCache
from dataenvgym_dagster.machinery.warehouse import Warehouse

from .conftest import MICRO_CATALOG, MICRO_TRAINING, Workspace, write_catalog
from .tiny_students import arithmetic_corpus
from .vllm_server import SERVED_NAME, VllmServer, save_teacher_model

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MAX_STRING_LENGTH, MAX_LIST_LENGTH = 6, 3
EXPERIMENT = {
    "policy": "weak_skills", "teacher": "llm", "discoverer": "llm", "data_budget": 16, "shortfall_tolerance": 1.0,
    "training": {"settings": MICRO_TRAINING},
}
# The discoverer and the teacher of iteration 1: everything that calls the endpoint.
TEACHER_ASSETS = [iteration_key(1, name) for name in ("skill_taxonomy", "environment_state", "data_generation_plan", "generated_dataset")]
BASE_EVALUATION = [iteration_key(0, name) for name in ("student_checkpoint", "validation_evaluation")]


def teacher_corpus() -> list[str]:
    """What the teacher model reads: its tokenizer learns merges from these prompts, so they stay short."""
    systems = [prompts.system_message("arithmetic", model).content for model in (GeneratedProblems, QuestionLabels, SkillGroups)]
    templates = [template.template for template in (*prompts.GENERATE.values(), prompts.LABEL_QUESTIONS, prompts.GROUP_SKILLS)]
    return systems + templates + arithmetic_corpus(200)


@pytest.fixture(scope="module")
def vllm_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm_teacher")
    model = save_teacher_model(root / "tiny_teacher", teacher_corpus())
    with VllmServer(model, root / "server.log") as server:
        yield server


def chat_settings(server: VllmServer, **overrides) -> EndpointSettings:
    values = {
        "base_url": server.base_url, "model": SERVED_NAME, "timeout_s": 120, "max_completion_tokens": 400,
        "max_string_length": MAX_STRING_LENGTH, "max_list_length": MAX_LIST_LENGTH, "parse_attempts": 2, **overrides,
    }
    return EndpointSettings(**values)


def labelling_request(seed: int) -> ChatRequest:
    questions = "\n".join(f"{number}. {text}" for number, text in enumerate(arithmetic_corpus(3, seed=seed), start=1))
    return ChatRequest(
        purpose="discover:label", seed=seed, prompt_version=prompts.PROMPT_VERSION,
        messages=(
            prompts.system_message("arithmetic", QuestionLabels),
            prompts.user_message(prompts.LABEL_QUESTIONS, known="", questions=questions),
        ),
    )


def test_guided_decoding_returns_the_bounded_schema_and_the_server_counts_tokens(vllm_teacher, tmp_path):
    ledger = MemoryLedger()
    chat = OpenAIChat(chat_settings(vllm_teacher), ReplyCache(tmp_path / "cache"), ledger)
    replies = chat.complete([labelling_request(seed) for seed in range(3)], QuestionLabels)
    assert all(reply.ok for reply in replies), [reply.error for reply in replies]
    for reply in replies:
        assert len(reply.value.labels) <= MAX_LIST_LENGTH
        assert all(len(label.skill) <= MAX_STRING_LENGTH and label.skill.isprintable() for label in reply.value.labels)
    assert all(record.input_tokens > 100 and record.output_tokens > 0 and record.attempts == 1 for record in ledger.calls)


def test_a_reply_that_breaks_the_schema_is_asked_again_then_recorded_as_unparsed(vllm_teacher, tmp_path):
    """Without structured output the random model writes anything: each try is a reply that does not parse."""
    ledger = MemoryLedger()
    chat = OpenAIChat(chat_settings(vllm_teacher, structured_output=False, max_completion_tokens=24), ReplyCache(tmp_path / "cache"), ledger)
    (reply,) = chat.complete([labelling_request(0)], QuestionLabels)
    assert not reply.ok and "no reply parsed in 2 tries" in reply.error
    (record,) = ledger.calls
    assert (record.outcome, record.attempts, record.cache_hit) == ("unparsed", 2, False)
    assert record.output_tokens > 0, "the tokens of replies that did not parse are still accounted"


def test_dagster_runs_the_llm_discoverer_and_teacher_against_vllm_then_replays_with_it_stopped(vllm_teacher, tmp_path, monkeypatch):
    catalog_file = write_catalog(tmp_path / "experiments.yaml", {"iterations": 1, "default_experiment": "vllm_teacher", "experiments": {"vllm_teacher": EXPERIMENT}})
    for variable, value in {
        "DATAENVGYM_EXPERIMENTS": str(catalog_file), "DATAENVGYM_TEACHER_BASE_URL": vllm_teacher.base_url,
        "DATAENVGYM_TEACHER_MODEL": SERVED_NAME, "DATAENVGYM_TEACHER_TIMEOUT_S": "120", "DATAENVGYM_TEACHER_MAX_TOKENS": "400",
        "DATAENVGYM_TEACHER_MAX_STRING_LENGTH": str(MAX_STRING_LENGTH), "DATAENVGYM_TEACHER_MAX_LIST_LENGTH": str(MAX_LIST_LENGTH),
        "DATAENVGYM_TEACHER_EXAMPLES_PER_CALL": "4", "DATAENVGYM_TEACHER_QUESTIONS_PER_CALL": "8",
        "DATAENVGYM_TEACHER_PARSE_ATTEMPTS": "2", "DATAENVGYM_TEACHER_PRICE_INPUT": "0.15", "DATAENVGYM_TEACHER_PRICE_OUTPUT": "0.6",
    }.items():
        monkeypatch.setenv(variable, value)
    home = tmp_path / "home"
    monkeypatch.setenv("DATAENVGYM_HOME", str(home))
    workspace = Workspace(home, load_catalog(catalog_file), build_definitions(load_catalog(catalog_file), str(home)), DagsterInstance.ephemeral())
    workspace.run_foundations()
    assert workspace.run_loop("vllm_teacher", asset_selection=BASE_EVALUATION + TEACHER_ASSETS).success

    with Warehouse(home).connect() as connection:
        ledger = connection.sql("SELECT * FROM teacher_calls WHERE experiment = 'vllm_teacher'").pl()
        taxonomy = connection.sql("SELECT DISTINCT skill FROM skill_taxonomies WHERE experiment = 'vllm_teacher'").pl()
        generated = connection.sql("SELECT * FROM generated_examples WHERE experiment = 'vllm_teacher'").pl()
    assert {"discover:label", "generate:skill_list"} <= set(ledger["purpose"])
    assert not ledger["cache_hit"].any()
    assert (ledger["outcome"] == "ok").all(), "bounded, every guided reply fits max_completion_tokens and parses"
    assert (ledger["input_tokens"] > 0).all() and (ledger["output_tokens"] > 0).all() and (ledger["cost_usd"] > 0).all()
    assert set(ledger["model"]) == {SERVED_NAME}
    assert taxonomy.height > 0 and all(skill.isprintable() for skill in taxonomy["skill"])
    assert generated.filter(pl.col("question").str.len_chars() > MAX_STRING_LENGTH).is_empty()
    assert generated["passed_quality_checks"].sum() == 1, "'111111' = '111111' is right, and every later copy a duplicate"

    vllm_teacher.stop()  # the network is off: the discoverer's and teacher's assets replay from the cache
    replayed_after = datetime.now(UTC)
    replay = workspace.run_loop(
        "vllm_teacher", asset_selection=[TEACHER_ASSETS[0], TEACHER_ASSETS[-1]],
        run_config={"resources": {"teacher": {"config": {"cache_mode": CacheMode.replay.value}}}},
    )
    assert replay.success
    with Warehouse(home).connect() as connection:
        again = connection.sql("SELECT * FROM teacher_calls WHERE experiment = 'vllm_teacher'").pl()
    replayed = again.filter(pl.col("recorded_at").dt.replace_time_zone(None) >= replayed_after.replace(tzinfo=None))
    assert replayed.height == ledger.height and replayed["cache_hit"].all() and replayed["attempts"].sum() == 0

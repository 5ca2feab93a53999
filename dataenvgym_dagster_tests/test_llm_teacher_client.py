"""The teacher's chat client against a real HTTP server: retries, parsing, cache, replay and ledger."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from dataenvgym_dagster.domain.teachers.chat import ChatMessage, ChatRequest
from dataenvgym_dagster.machinery.teacher import (
    CacheMissError,
    CacheMode,
    EndpointSettings,
    MemoryLedger,
    OpenAIChat,
    ReplyCache,
)
from dataenvgym_dagster.machinery.teacher.client import bounded_schema
from dataenvgym_dagster.machinery.teacher.replies import ReplyParseError, parse_reply
from dataenvgym_dagster_tests.openai_server import OpenAITestServer

SECRET = "sk-test-never-log-me-0123456789"


class Problems(BaseModel):
    problems: list[dict[str, str]]


def fast(server: OpenAITestServer, **overrides) -> EndpointSettings:
    """Settings for tests: short timeouts and backoffs, so faults cost milliseconds."""
    values = {
        "base_url": server.base_url, "model": "test-teacher", "timeout_s": 0.5, "backoff_initial_s": 0.005,
        "backoff_max_s": 0.02, "max_retry_after_s": 2.0, **overrides,
    }
    return EndpointSettings(**values)


def request(number: int = 0, count: int = 3) -> ChatRequest:
    prompt = f"Write some problems.\nSkill: `addition/one_digit`\nNumber of problems: {count}\nCall {number}"
    return ChatRequest(purpose="generate:test", seed=number, prompt_version="test", messages=(ChatMessage(role="user", content=prompt),))


def client(server: OpenAITestServer, tmp_path: Path, **overrides) -> tuple[OpenAIChat, MemoryLedger]:
    ledger = MemoryLedger()
    return OpenAIChat(fast(server, **overrides), ReplyCache(tmp_path / "cache"), ledger), ledger


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "timeout", "disconnect", "broken_body"])
def test_each_transport_fault_is_retried_until_the_call_succeeds(openai_server, tmp_path, fault):
    openai_server.faults.script = [fault, fault]
    openai_server.faults.delay_s = 1.0
    chat, ledger = client(openai_server, tmp_path)
    (reply,) = chat.complete([request()], Problems)
    assert reply.ok and len(reply.value.problems) == 3
    assert openai_server.injected[fault] == 2
    (record,) = ledger.calls
    assert (record.attempts, record.outcome, record.cache_hit) == (3, "ok", False)


def test_retry_after_is_honoured_even_when_backoff_would_be_shorter(openai_server, tmp_path):
    openai_server.faults.script = ["rate_limit"]
    openai_server.faults.retry_after_s = 0.4
    chat, ledger = client(openai_server, tmp_path, backoff_initial_s=0.001)
    started = time.monotonic()
    (reply,) = chat.complete([request()], Problems)
    assert reply.ok
    assert time.monotonic() - started >= 0.4
    assert ledger.calls[0].attempts == 2


def test_transport_retries_are_bounded_and_a_failed_call_does_not_discard_the_others(openai_server, tmp_path):
    openai_server.faults.script = ["server_error"] * 3
    chat, ledger = client(openai_server, tmp_path, max_attempts=3, max_concurrency=1)
    replies = chat.complete([request(0), request(1), request(2)], Problems)
    assert [reply.ok for reply in replies] == [False, True, True]
    assert "gave up after 3 requests; last: HTTP 500" in replies[0].error
    assert [(r.outcome, r.attempts) for r in ledger.calls] == [("failed", 3), ("ok", 1), ("ok", 1)]


def test_a_reply_that_does_not_parse_is_asked_for_again(openai_server, tmp_path):
    openai_server.faults.script = ["malformed"]
    chat, ledger = client(openai_server, tmp_path)
    (reply,) = chat.complete([request()], Problems)
    assert reply.ok
    assert (ledger.calls[0].attempts, ledger.calls[0].outcome) == (2, "ok")


def test_replies_that_never_parse_are_recorded_as_unparsed_after_bounded_tries(openai_server, tmp_path):
    openai_server.faults.script = ["malformed"] * 2
    chat, ledger = client(openai_server, tmp_path, parse_attempts=2, max_concurrency=1)
    bad, good = chat.complete([request(0), request(1)], Problems)
    assert not bad.ok and "no reply parsed in 2 tries" in bad.error and good.ok
    assert ledger.calls[0].outcome == "unparsed" and ledger.calls[0].input_tokens > 0  # the tries were paid for
    assert not ReplyCache(tmp_path / "cache").path(bad.prompt_hash).exists()  # failures are never cached


def test_a_status_that_retrying_cannot_fix_fails_the_call_at_once(openai_server, tmp_path):
    openai_server.api_key = SECRET
    chat, ledger = client(openai_server, tmp_path, api_key="sk-wrong")
    (reply,) = chat.complete([request()], Problems)
    assert "HTTP 401" in reply.error and ledger.calls[0].attempts == 1


def test_a_second_identical_call_is_served_from_the_cache_with_no_request(openai_server, tmp_path):
    chat, ledger = client(openai_server, tmp_path, price_per_million_input_tokens=2.0, price_per_million_output_tokens=8.0)
    first = chat.complete([request(0), request(1)], Problems)
    sent = openai_server.requests
    again = chat.complete([request(0), request(1)], Problems)
    assert openai_server.requests == sent == 2
    assert [r.value for r in again] == [r.value for r in first]
    paid, hits = ledger.calls[:2], ledger.calls[2:]
    assert all(r.cost_usd > 0 and r.input_tokens > 0 and not r.cache_hit for r in paid)
    assert all(r.cache_hit and r.cost_usd == 0 and r.attempts == 0 for r in hits)
    assert [r.prompt_hash for r in hits] == [r.prompt_hash for r in paid]
    assert chat.usage()["teacher_calls"] == 4 and chat.usage()["teacher_cache_hits"] == 2


def test_the_cache_key_changes_with_model_parameters_and_seed(openai_server, tmp_path):
    chat, _ = client(openai_server, tmp_path)
    key = chat.cache_key(request(0), Problems)
    assert chat.cache_key(request(1), Problems) != key  # seed (and prompt)
    assert client(openai_server, tmp_path, temperature=0.1)[0].cache_key(request(0), Problems) != key
    assert client(openai_server, tmp_path, model="other")[0].cache_key(request(0), Problems) != key


def test_replay_serves_cached_replies_with_the_server_stopped(openai_server, tmp_path):
    live, _ = client(openai_server, tmp_path)
    expected = live.complete([request()], Problems)[0].value
    openai_server.stop()
    replay, ledger = client(openai_server, tmp_path, cache_mode=CacheMode.replay)
    assert replay.complete([request()], Problems)[0].value == expected
    assert ledger.calls[0].cache_hit


def test_replay_fails_clearly_on_a_cache_miss_before_calling_anything(openai_server, tmp_path):
    replay, _ = client(openai_server, tmp_path, cache_mode=CacheMode.replay)
    with pytest.raises(CacheMissError, match=r"replay mode: 1 of 1 teacher calls are not in the cache .* prompt hash [0-9a-f]{64}.*'live'"):
        replay.complete([request()], Problems)
    assert openai_server.requests == 0


def test_refresh_mode_calls_again_and_overwrites_the_cache(openai_server, tmp_path):
    client(openai_server, tmp_path)[0].complete([request()], Problems)
    client(openai_server, tmp_path, cache_mode=CacheMode.refresh)[0].complete([request()], Problems)
    assert openai_server.requests == 2


def test_an_endpoint_without_structured_output_is_asked_for_plain_json(openai_server, tmp_path):
    openai_server.structured_output = False
    chat, _ = client(openai_server, tmp_path)
    replies = chat.complete([request(0), request(1)], Problems)
    assert all(reply.ok for reply in replies)
    assert "response_format" not in openai_server.bodies[-1]


def test_structured_output_is_requested_with_the_reply_schema(openai_server, tmp_path):
    client(openai_server, tmp_path)[0].complete([request()], Problems)
    response_format = openai_server.bodies[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == Problems.model_json_schema()


def test_bounds_on_strings_and_lists_reach_the_schema_sent_and_the_cache_key(openai_server, tmp_path):
    chat, _ = client(openai_server, tmp_path, max_string_length=12, max_list_length=3)
    (reply,) = chat.complete([request()], Problems)
    schema = openai_server.bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["problems"]["maxItems"] == 3
    assert schema["properties"]["problems"]["items"]["additionalProperties"] == {"type": "string", "maxLength": 12}
    assert reply.ok, "the bounds are asked of the endpoint's guided decoding; the reply is still parsed as before"
    assert chat.cache_key(request(), Problems) != client(openai_server, tmp_path)[0].cache_key(request(), Problems)


def test_a_bound_tighter_than_the_cap_is_kept():
    class Named(BaseModel):
        names: list[str] = Field(max_length=2)

    schema = bounded_schema(Named.model_json_schema(), max_string_length=None, max_list_length=5)
    assert schema["properties"]["names"]["maxItems"] == 2 and "maxLength" not in schema["properties"]["names"]["items"]


def test_the_api_key_is_sent_but_never_stored(openai_server, tmp_path):
    openai_server.api_key = SECRET
    chat, ledger = client(openai_server, tmp_path, api_key=SECRET)
    assert chat.complete([request()], Problems)[0].ok
    stored = "".join(path.read_text() for path in (tmp_path / "cache").rglob("*.json"))
    assert stored and SECRET not in stored
    assert SECRET not in repr(ledger.calls) and SECRET not in repr(chat.settings)


@pytest.mark.parametrize(
    "text",
    [
        '{"problems": [{"question": "1+2", "answer": "3"}]}',
        'Here you go:\n```json\n{"problems": [{"question": "1+2", "answer": "3"}]}\n```\nEnjoy!',
        'Sure. {"problems": [{"question": "1+2", "answer": "3"}]} Anything else?',
        '[{"question": "1+2", "answer": "3"}]',
    ],
    ids=["bare", "fenced", "in_prose", "bare_list"],
)
def test_replies_are_parsed_tolerantly(text):
    assert parse_reply(text, Problems).problems == [{"question": "1+2", "answer": "3"}]


@pytest.mark.parametrize("text", ["", "no json here", '{"problems": "three"}'])
def test_unparsable_replies_say_why(text):
    with pytest.raises(ReplyParseError, match="reply"):
        parse_reply(text, Problems)

"""The teacher's chat client: any OpenAI-compatible endpoint, concurrent, retried, cached and accounted.

It implements ``domain.teachers.chat.TeacherChat`` with the official ``openai`` package
(``AsyncOpenAI``). The client's own retries are off, so the policy here is the only one:

* calls run concurrently, at most ``max_concurrency`` at a time, with progress every ~10 %;
* 429 (waiting as long as ``Retry-After`` says, up to ``max_retry_after_s``), 408, 409, 5xx,
  timeouts and dropped connections are retried with exponential backoff and jitter, at most
  ``max_attempts`` requests per try; other statuses (401, 404 …) fail the call at once;
* a reply that does not parse into the expected model is asked for again, at most
  ``parse_attempts`` times, and then recorded as ``unparsed``;
* a failed call becomes a reply with ``error`` set: it never discards the others;
* structured output (``response_format: json_schema``) is requested when enabled; an endpoint
  that rejects it (HTTP 400) is asked again without it, and replies are parsed tolerantly.

Every logical call becomes one ledger record; the API key never leaves the ``openai`` client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import functools
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dataenvgym_dagster.domain.teachers.chat import ChatReply, ChatRequest
from dataenvgym_dagster.machinery.teacher.cache import CachedReply, CacheMissError, CacheMode, ReplyCache, prompt_hash
from dataenvgym_dagster.machinery.teacher.ledger import CallRecord, Ledger, summary
from dataenvgym_dagster.machinery.teacher.replies import ReplyParseError, parse_reply

if TYPE_CHECKING:  # imported where a request is sent: loading the code location (every run process) does not need it
    import openai

T = TypeVar("T")
Log = Callable[[str], None]
RETRIED_STATUSES = {408, 409, 429}  # and every status >= 500
PLACEHOLDER_KEY = "not-needed"  # local servers (vllm serve without --api-key) accept any key


class EndpointSettings(BaseModel):
    """Where the teacher model is and how to call it. Prices are US dollars per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = Field(None, description="None: a placeholder, for servers that need no key.")
    temperature: float = Field(0.7, ge=0)
    max_completion_tokens: int | None = Field(4096, gt=0, description="Reply length limit per call; None sends none.")
    max_concurrency: int = Field(16, gt=0)
    timeout_s: float = Field(60.0, gt=0, description="Per HTTP request.")
    max_attempts: int = Field(6, gt=0, description="HTTP requests per try before the call fails (429, 5xx, timeouts, resets).")
    parse_attempts: int = Field(3, gt=0, description="Tries before a call whose replies never parse is recorded as unparsed.")
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(120.0, ge=0, description="The longest Retry-After the client waits.")
    structured_output: bool = Field(True, description="Ask for response_format json_schema (falls back when rejected).")
    max_string_length: int | None = Field(
        None, gt=0, description="Structured output: every string of the schema sent gets this maxLength, every integer as many "
        "digits at most. None: the reply model's own."
    )
    max_list_length: int | None = Field(
        None, gt=0, description="Structured output: every array of the schema sent gets this maxItems. None: the reply model's own."
    )
    price_per_million_input_tokens: float = Field(0.0, ge=0)
    price_per_million_output_tokens: float = Field(0.0, ge=0)
    cache_mode: CacheMode = CacheMode.live

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_per_million_input_tokens + output_tokens * self.price_per_million_output_tokens) / 1e6


class _GaveUp(Exception):
    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error, self.attempts = error, attempts


class _Outcome(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    reply: ChatReply
    record: CallRecord


class OpenAIChat:
    """A ``TeacherChat`` over an OpenAI-compatible endpoint, with a reply cache and a ledger."""

    def __init__(self, settings: EndpointSettings, cache: ReplyCache, ledger: Ledger, log: Log | None = None) -> None:
        self.settings = settings
        self.model = settings.model
        self.cache = cache
        self.ledger = ledger
        self.log = log or (lambda message: None)
        self._structured = settings.structured_output
        self.calls: list[CallRecord] = []

    # -- the interface ------------------------------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest], reply_model: type[BaseModel]) -> list[ChatReply]:
        """One reply per request, in order; failures are replies with ``error`` set.

        Raises :class:`CacheMissError` in replay mode when any request is not cached, before calling anything.
        """
        if not requests:
            return []
        keys = [prompt_hash(self.cache_key(request, reply_model)) for request in requests]
        cached = {} if self.settings.cache_mode is CacheMode.refresh else self._cached(keys, reply_model)
        misses = [index for index in range(len(requests)) if index not in cached]
        if misses and self.settings.cache_mode is CacheMode.replay:
            first = requests[misses[0]]
            raise CacheMissError(
                f"replay mode: {len(misses)} of {len(requests)} teacher calls are not in the cache at {self.cache.root} "
                f"(first: {first.purpose} call with prompt hash {keys[misses[0]]}, model {self.model!r}, prompt version "
                f"{first.prompt_version}). Run once with cache mode 'live' to fill the cache, or restore the cache folder; "
                "a changed model, prompt template, temperature, schema or seed makes a new prompt hash."
            )
        self.log(
            f"teacher: {len(requests)} {requests[0].purpose} calls to {self.model} at {self.settings.base_url}: "
            f"{len(cached)} from the cache, {len(misses)} to send, up to {self.settings.max_concurrency} at once"
        )
        outcomes: dict[int, _Outcome] = {index: self._hit(requests[index], keys[index], value) for index, value in cached.items()}
        if misses:
            sent = _run(self._send_all([(requests[i], keys[i]) for i in misses], reply_model))
            outcomes.update(zip(misses, sent, strict=True))
        ordered = [outcomes[index] for index in range(len(requests))]
        records = [outcome.record for outcome in ordered]
        self.ledger.record(records)
        self.calls.extend(records)
        totals = summary(records)
        self.log(
            f"teacher: {totals['teacher_calls']} {requests[0].purpose} calls, {totals['teacher_cache_hits']} from the cache, "
            f"{totals['teacher_failed_calls']} failed, {totals['teacher_requests']} HTTP requests, "
            f"{totals['teacher_input_tokens']:,} input + {totals['teacher_output_tokens']:,} output tokens, "
            f"${totals['teacher_cost_usd']:.4f}"
        )
        return [outcome.reply for outcome in ordered]

    def reject(self, request: ChatRequest, prompt_hash: str, reply: str, reasons: Sequence[str]) -> None:
        """Record in the ledger that a parsed reply was refused by its caller (outcome ``refused``), with the reply and why."""
        record = CallRecord(
            purpose=request.purpose, model=self.model, prompt_version=request.prompt_version,
            prompt_hash=prompt_hash, outcome="refused",
            error=self._redact(f"{'; '.join(reasons)} | reply: {reply}"),
        )
        self.ledger.record([record])
        self.calls.append(record)

    def usage(self) -> dict[str, float | int]:
        """Totals over every call this client made: for asset metadata."""
        return summary(self.calls)

    def cache_key(self, request: ChatRequest, reply_model: type[BaseModel]) -> dict[str, Any]:
        """Everything that determines a reply; its hash is the cache key and the ledger's prompt_hash."""
        return {
            "model": self.model,
            "messages": [message.model_dump() for message in request.messages],
            "params": {"temperature": self.settings.temperature, "max_completion_tokens": self.settings.max_completion_tokens},
            "schema": self._schema(reply_model),
            "prompt_version": request.prompt_version,
            "seed": request.seed,
        }

    # -- cache --------------------------------------------------------------------------------------
    def _cached(self, keys: list[str], reply_model: type[BaseModel]) -> dict[int, BaseModel]:
        found = {}
        for index, key in enumerate(keys):
            entry = self.cache.get(key)
            if entry is None:
                continue
            try:
                found[index] = parse_reply(entry.content, reply_model)
            except ReplyParseError:
                continue  # stored under an older reply model: a miss
        return found

    def _hit(self, request: ChatRequest, key: str, value: BaseModel) -> _Outcome:
        record = CallRecord(
            purpose=request.purpose, model=self.model, prompt_version=request.prompt_version, prompt_hash=key, cache_hit=True
        )
        return _Outcome(reply=ChatReply(value=value, prompt_hash=key), record=record)

    # -- calls --------------------------------------------------------------------------------------
    async def _send_all(self, pending: list[tuple[ChatRequest, str]], reply_model: type[BaseModel]) -> list[_Outcome]:
        progress = _Progress(len(pending), pending[0][0].purpose, self.log)
        limit = asyncio.Semaphore(self.settings.max_concurrency)
        api_key = self.settings.api_key.get_secret_value() if self.settings.api_key else PLACEHOLDER_KEY
        # A pool as large as the concurrency: httpcore scans every pooled connection per request.
        limits = httpx.Limits(max_connections=self.settings.max_concurrency, max_keepalive_connections=self.settings.max_concurrency)
        import openai

        async with openai.AsyncOpenAI(
            base_url=self.settings.base_url, api_key=api_key, max_retries=0, timeout=self.settings.timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
        ) as client:

            async def one(request: ChatRequest, key: str) -> _Outcome:
                async with limit:
                    outcome = await self._call(client, request, key, reply_model)
                progress.done(outcome.record)
                return outcome

            return list(await asyncio.gather(*(one(request, key) for request, key in pending)))

    async def _call(self, client: openai.AsyncOpenAI, request: ChatRequest, key: str, reply_model: type[BaseModel]) -> _Outcome:
        """One logical call: tries until a reply parses (at most ``parse_attempts``), each try retried on faults."""
        started = time.monotonic()
        rng = random.Random(key)  # jitter is seeded too
        attempts = input_tokens = output_tokens = 0
        outcome, error, value = "unparsed", "", None
        for _ in range(self.settings.parse_attempts):
            try:
                completion, used = await self._request(client, request, reply_model, rng)
            except _GaveUp as gave_up:
                attempts += gave_up.attempts
                outcome, error = "failed", gave_up.error
                break
            attempts += used
            if completion.usage is not None:
                input_tokens += completion.usage.prompt_tokens or 0
                output_tokens += completion.usage.completion_tokens or 0
            content = completion.choices[0].message.content if completion.choices else None
            try:
                value = parse_reply(content, reply_model)
            except ReplyParseError as parse_error:
                error = str(parse_error)
                continue
            outcome, error = "ok", ""
            self.cache.put(
                CachedReply(
                    prompt_hash=key, model=self.model, purpose=request.purpose, content=content or "",
                    input_tokens=completion.usage.prompt_tokens if completion.usage else 0,
                    output_tokens=completion.usage.completion_tokens if completion.usage else 0,
                    request=self.cache_key(request, reply_model),
                )
            )
            break
        if outcome == "unparsed":
            error = f"no reply parsed in {self.settings.parse_attempts} tries; last: {error}"
        error = self._redact(error) or None
        record = CallRecord(
            purpose=request.purpose, model=self.model, prompt_version=request.prompt_version, prompt_hash=key,
            input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=self.settings.cost(input_tokens, output_tokens),
            latency_s=time.monotonic() - started, attempts=attempts, outcome=outcome, error=error,
        )
        return _Outcome(reply=ChatReply(value=value if outcome == "ok" else None, error=error, prompt_hash=key), record=record)

    async def _request(self, client: openai.AsyncOpenAI, request: ChatRequest, reply_model: type[BaseModel], rng: random.Random):
        """One completion, retrying transient faults; returns it with the number of HTTP requests made."""
        import openai

        for attempt in range(1, self.settings.max_attempts + 1):
            arguments = self._arguments(request, reply_model)
            try:
                return await client.chat.completions.create(**arguments), attempt
            except openai.APIStatusError as error:
                status = error.status_code
                if status == 400 and "response_format" in arguments:
                    if self._structured:  # log once, not once per concurrent call
                        self.log(f"teacher: {self.settings.base_url} rejected structured output (HTTP 400); asking for plain JSON")
                    self._structured = False  # the endpoint rejects response_format: parse tolerantly instead
                    continue
                if status not in RETRIED_STATUSES and status < 500:
                    raise _GaveUp(f"HTTP {status} from {self.settings.base_url}: {error.message}", attempt) from None
                wait = _retry_after(error.response) if status == 429 else None
                reason = f"HTTP {status}"
            except openai.APIConnectionError as error:  # includes timeouts and dropped connections
                reason = "timeout" if isinstance(error, openai.APITimeoutError) else f"connection error ({error.__cause__ or error})"
                wait = None
            except (openai.APIError, ValueError) as error:  # a 200 whose body is not a chat completion
                reason = f"invalid response ({type(error).__name__}: {error})"
                wait = None
            if attempt == self.settings.max_attempts:
                raise _GaveUp(f"gave up after {attempt} requests; last: {reason}", attempt)
            if wait is None:
                wait = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** (attempt - 1))
                wait *= 0.5 + rng.random() / 2  # jitter: spread clients that failed together
            await asyncio.sleep(min(wait, self.settings.max_retry_after_s))
        raise _GaveUp(f"gave up after {self.settings.max_attempts} requests; last: HTTP 400 to structured output", self.settings.max_attempts)

    def _arguments(self, request: ChatRequest, reply_model: type[BaseModel]) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [message.model_dump() for message in request.messages],
            "temperature": self.settings.temperature,
            "seed": request.seed,
        }
        if self.settings.max_completion_tokens is not None:
            arguments["max_completion_tokens"] = self.settings.max_completion_tokens
        if self._structured:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": reply_model.__name__, "schema": self._schema(reply_model)},
            }
        return arguments

    def _schema(self, reply_model: type[BaseModel]) -> dict[str, Any]:
        return _schema(reply_model, self.settings.max_string_length, self.settings.max_list_length)

    def _redact(self, text: str) -> str:
        if self.settings.api_key and self.settings.api_key.get_secret_value():
            return text.replace(self.settings.api_key.get_secret_value(), "***")
        return text


@functools.cache
def _schema(reply_model: type[BaseModel], max_string_length: int | None = None, max_list_length: int | None = None) -> dict[str, Any]:
    """The reply model's JSON schema (bounded as :func:`bounded_schema` says), built once per model and
    bounds: it is on every call's path."""
    return bounded_schema(reply_model.model_json_schema(), max_string_length, max_list_length)


def bounded_schema(schema: Any, max_string_length: int | None, max_list_length: int | None) -> Any:
    """``schema`` with every string capped at ``max_string_length`` characters (every integer at as many
    digits) and every array at ``max_list_length`` items; a tighter bound the schema already has is kept, and
    None leaves that kind alone.

    Guided decoding generates only what the schema allows, so the caps bound what one reply can
    spend on one field: against a model that repeats itself (or, in tests, a random one).
    """
    if isinstance(schema, list):
        return [bounded_schema(item, max_string_length, max_list_length) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bounded_schema(value, max_string_length, max_list_length) for key, value in schema.items()}
    for kind, keyword, cap in (("string", "maxLength", max_string_length), ("array", "maxItems", max_list_length)):
        if cap is not None and bounded.get("type") == kind:
            bounded[keyword] = min(cap, bounded.get(keyword, cap))
    if max_string_length is not None and bounded.get("type") == "integer":  # digits are characters too
        largest = 10**max_string_length - 1
        bounded["maximum"] = min(largest, bounded.get("maximum", largest))
        bounded["minimum"] = max(-largest, bounded.get("minimum", -largest))
    return bounded


def _retry_after(response: Any) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms``, ``Retry-After`` seconds or date), if any."""
    headers = getattr(response, "headers", None) or {}
    if (milliseconds := headers.get("retry-after-ms")) is not None:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class _Progress:
    """Logs after about every tenth of the calls completes."""

    def __init__(self, total: int, purpose: str, log: Log) -> None:
        self.total, self.purpose, self.log = total, purpose, log
        self.finished = self.failed = self.retried = 0
        self.started = time.monotonic()

    def done(self, record: CallRecord) -> None:
        self.finished += 1
        self.failed += record.outcome != "ok"
        self.retried += record.attempts > 1
        if self.finished == self.total or self.finished * 10 // self.total > (self.finished - 1) * 10 // self.total:
            rate = self.finished / max(time.monotonic() - self.started, 1e-9)
            self.log(
                f"teacher: {self.finished}/{self.total} {self.purpose} calls done ({self.retried} retried, "
                f"{self.failed} failed, {rate:.1f} calls/s)"
            )


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

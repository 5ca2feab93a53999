"""A small OpenAI-protocol server for tests and benchmarks: ``POST /v1/chat/completions`` only.

It answers with scripted replies (a responder gets the request JSON and returns the message
content), reports ``usage`` token counts, and injects faults at a configured rate, seeded:

* ``rate_limit``: HTTP 429 with a ``Retry-After`` header;
* ``server_error``: HTTP 500;
* ``timeout``: the reply comes ``delay_s`` late, after the client has given up;
* ``disconnect``: the connection is closed without a reply;
* ``malformed``: HTTP 200 whose message content is not JSON;
* ``broken_body``: HTTP 200 whose body itself is cut-off JSON.

``script`` forces the faults of the next requests, in order ("ok" for none), for tests that need
one particular fault. ``ArithmeticResponder`` plays a competent arithmetic teacher: it reads
the skill and count from the prompt and answers with correct problems from the domain's
generators, labels questions by operator, and groups skills by their first word.

Run ``python -m dataenvgym_dagster_tests.openai_server --latency 0.2`` to serve on a free port.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from dataenvgym_dagster.domain.arithmetic.generators import GENERATORS

FAULT_KINDS = ("rate_limit", "server_error", "timeout", "disconnect", "malformed", "broken_body")
Responder = Callable[[dict[str, Any]], str]


@dataclass
class Faults:
    """Which faults to inject and how often; ``rate`` is the share of requests that get one."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after_s: float = 0.05
    delay_s: float = 1.0
    seed: int = 0
    script: list[str] = field(default_factory=list)


def last_user_message(request: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")


@dataclass
class ArithmeticResponder:
    """Answers the teacher's and the discoverer's prompts as a competent model would.

    ``fraction`` < 1 returns only that share of the problems asked for (a lazy teacher).
    """

    fraction: float = 1.0

    def __call__(self, request: dict[str, Any]) -> str:
        prompt = last_user_message(request)
        rng = random.Random(request.get("seed", 0))
        if count := re.search(r"Number of problems: (\d+)", prompt):
            skill = re.search(r"Skill: `([^`]+)`", prompt).group(1)
            generator = GENERATORS.get(skill) or next(
                (g for name, g in GENERATORS.items() if name.split("/")[0] == skill.split("/")[0]), GENERATORS["addition/one_digit"]
            )
            wanted = int(int(count.group(1)) * self.fraction)
            problems = [dict(zip(("question", "answer"), generator(rng), strict=True)) for _ in range(wanted)]
            return json.dumps({"problems": problems})
        if count := re.search(r"Number of sub-skills: (\d+)", prompt):
            skill = re.search(r"The skill `([^`]+)`", prompt).group(1)
            existing = prompt.split("Existing sub-skills:", 1)[1].split("\n", 1)[0]
            names = [name.split("/", 1)[1] for name in GENERATORS if name.startswith(f"{skill}/") and name not in existing]
            return json.dumps({"subskills": names[: int(count.group(1))]})
        if "Questions:\n" in prompt:
            lines = prompt.split("Questions:\n", 1)[1].splitlines()
            labels = [{"id": int(n), "skill": label_question(q)} for n, q in (line.split(". ", 1) for line in lines if line.strip())]
            return json.dumps({"labels": labels})
        if "Skills:\n" in prompt:
            skills = [line[2:] for line in prompt.split("Skills:\n", 1)[1].splitlines() if line.startswith("- ")]
            groups: dict[str, list[str]] = {}
            for skill in skills:
                groups.setdefault(skill.split("_")[0], []).append(skill)
            return json.dumps({"categories": [{"category": c, "skills": s} for c, s in groups.items()]})
        return json.dumps({"error": "unrecognised prompt"})


@dataclass
class PolicyResponder:
    """Answers the LLM policies' prompts as a sensible model would, and everything else as ``teacher`` does.

    Skill-List: the budget evenly over the three least accurate skills; Skill-Tree: explore two
    sub-skills of an empty tree, otherwise even shares, the budget evenly over trees; Open-Ended:
    the first eight errors, the budget evenly. ``replies`` are sent instead, in order, to the next
    policy prompts (a reply over the budget, naming an unknown skill, not JSON ...).
    """

    teacher: Responder = field(default_factory=ArithmeticResponder)
    replies: list[str] = field(default_factory=list)
    policy_prompts: int = 0

    def __call__(self, request: dict[str, Any]) -> str:
        first = next(m["content"] for m in request["messages"] if m["role"] == "user")
        budget = re.search(r"Budget: at most (\d+) training examples", first)
        if budget is None:
            return self.teacher(request)
        self.policy_prompts += 1
        if self.replies:
            return self.replies.pop(0)
        budget = int(budget.group(1))
        lines = first.splitlines()
        if first.startswith("skill_list state"):
            skills = [(float(m.group(2)), m.group(1)) for line in lines if (m := re.match(r"- (\S+): accuracy (\d+)%", line))]
            chosen = [skill for _, skill in sorted(skills)[:3]]
            return json.dumps({"allocations": [
                {"skill": skill, "examples": budget // len(chosen), "rationale": "among the least accurate"} for skill in chosen
            ]})
        if first.startswith("skill_tree state"):
            trees: dict[str, list[str]] = {}
            for line in lines:
                if m := re.match(r"- (\S+): accuracy", line):
                    tree = trees.setdefault(m.group(1), [])
                elif m := re.match(r"  - (\S+): share", line):
                    tree.append(m.group(1))
            each = budget // len(trees)
            return json.dumps({"trees": [
                {"skill": skill, "action": "exploit", "examples": each, "shares": {n: 1 / len(nodes) for n in nodes}, "rationale": "even"}
                if nodes else {"skill": skill, "action": "explore", "examples": each, "new_subskills": 2, "rationale": "empty tree"}
                for skill, nodes in trees.items()
            ]})
        errors = [m.group(1) for line in lines if (m := re.match(r"- (\S+) \[", line))][:8]
        return json.dumps({"specs": [
            {"example_id": example, "examples": budget // len(errors), "spec": "the same kind of problem, other numbers"} for example in errors
        ]})


def label_question(question: str) -> str:
    """A skill name from the operator: what a model would say the question tests."""
    if "?" in question:
        return "comparison_of_numbers"
    if "(" in question or len(re.findall(r"[-+*%]", question)) > 1:
        return "two_step_expressions"
    for symbol, name in (("%", "modulo_remainders"), ("*", "multiplication_facts"), ("-", "subtraction"), ("+", "addition")):
        if symbol in question:
            size = "large" if max(map(int, re.findall(r"\d+", question))) >= 10 else "small"
            return f"{name}_{size}"
    return "unknown"


class OpenAITestServer:
    """Serves on 127.0.0.1 on a free port in a background thread; use as a context manager."""

    def __init__(
        self,
        responder: Responder | None = None,
        faults: Faults | None = None,
        *,
        latency_s: float = 0.0,
        api_key: str | None = None,
        structured_output: bool = True,
    ) -> None:
        self.responder = responder or ArithmeticResponder()
        self.faults = faults or Faults()
        self.latency_s = latency_s
        self.api_key = api_key
        self.structured_output = structured_output
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> Self:
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            if self.faults.script:
                fault = self.faults.script.pop(0)
            elif self._rng.random() < self.faults.rate:
                fault = self._rng.choice(self.faults.kinds)
            else:
                fault = "ok"
            self.injected[fault] += 1
            return fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once in the throughput benchmark

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected here


def _handler(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms a reply.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._json(404, {"error": {"message": f"no route {self.path}"}})
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                return self._json(401, {"error": {"message": "invalid api key"}})
            if not server.structured_output and (body.get("response_format") or {}).get("type") == "json_schema":
                return self._json(400, {"error": {"message": "response_format json_schema is not supported"}})
            with server._lock:
                server.bodies.append(body)
            fault = server.next_fault()
            if server.latency_s:
                time.sleep(server.latency_s)
            if fault == "rate_limit":
                return self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": str(server.faults.retry_after_s)})
            if fault == "server_error":
                return self._json(500, {"error": {"message": "internal error"}})
            if fault == "disconnect":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if fault == "timeout":
                time.sleep(server.faults.delay_s)
            if fault == "broken_body":
                return self._raw(200, b'{"id": "chatcmpl-cut", "choices": [{"mess')
            content = "Sure! {problems: [oops" if fault == "malformed" else server.responder(body)
            prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
            return self._json(200, {
                "id": f"chatcmpl-{server.requests}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "test"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                          "total_tokens": prompt_tokens + len(content) // 4},
            })

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._raw(status, json.dumps(payload).encode(), headers)

        def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    arguments = parser.parse_args()
    with OpenAITestServer(faults=Faults(rate=arguments.fault_rate), latency_s=arguments.latency) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""Teacher client throughput: 1 000 calls against the local OpenAI-protocol server.

The server (``dataenvgym_dagster_tests/openai_server.py``) runs in its own process and waits
``--latency`` seconds before each reply, like a model generating. With ``--concurrency`` calls
in flight the ideal is concurrency / latency calls per second (32 / 0.2 s = 160 calls/s);
the script prints what the client achieved, with the real ``openai`` client, its retry
policy, the cache (empty: every call is a miss) and the ledger all on the path.

    .venv/bin/python benchmarks/teacher_throughput.py [--calls 1000] [--concurrency 32] [--latency 0.2] [--fault-rate 0]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dataenvgym_dagster.domain.teachers.chat import ChatMessage, ChatRequest
from dataenvgym_dagster.domain.teachers.llm import GeneratedProblems
from dataenvgym_dagster.machinery.teacher import EndpointSettings, MemoryLedger, OpenAIChat, ReplyCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2, help="server seconds per reply")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that get an injected fault")
    arguments = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "dataenvgym_dagster_tests.openai_server", "--latency", str(arguments.latency),
         "--fault-rate", str(arguments.fault_rate)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        settings = EndpointSettings(
            base_url=base_url, model="benchmark", max_concurrency=arguments.concurrency, timeout_s=max(2.0, 10 * arguments.latency),
            backoff_initial_s=0.05, backoff_max_s=0.5,
        )
        ledger = MemoryLedger()
        chat = OpenAIChat(settings, ReplyCache(Path(tempfile.mkdtemp(prefix="teacher-cache-"))), ledger)
        requests = [
            ChatRequest(
                purpose="benchmark", seed=index, prompt_version="benchmark",
                messages=(ChatMessage(role="user", content=f"Skill: `addition/one_digit`\nNumber of problems: 5\nCall {index}"),),
            )
            for index in range(arguments.calls)
        ]
        started = time.perf_counter()
        replies = chat.complete(requests, GeneratedProblems)
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()

    ideal = arguments.concurrency / arguments.latency
    achieved = arguments.calls / seconds
    latencies = sorted(call.latency_s for call in ledger.calls)
    print(f"calls: {arguments.calls}, concurrency {arguments.concurrency}, server latency {arguments.latency * 1000:.0f} ms, "
          f"fault rate {arguments.fault_rate:.0%}")
    print(f"ok: {sum(reply.ok for reply in replies)}, failed: {sum(not reply.ok for reply in replies)}, "
          f"HTTP requests: {sum(call.attempts for call in ledger.calls)}")
    print(f"wall time: {seconds:.2f} s (ideal {arguments.calls / ideal:.2f} s)")
    print(f"throughput: {achieved:.1f} calls/s of an ideal {ideal:.1f} calls/s ({achieved / ideal:.0%})")
    print(f"call latency: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {latencies[int(0.95 * (len(latencies) - 1))] * 1000:.0f} ms")


if __name__ == "__main__":
    main()

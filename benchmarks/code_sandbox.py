"""Sandboxed executions per second, HumanEval and a LiveCodeBench-style stdin batch, against bare loops.

HumanEval: the 164 canonical solutions, each judged as the code domain judges it (a bubblewrap
sandbox and a cgroup per program, ``check(candidate)`` on the trusted side, one round trip per
call). Baseline: ``subprocess.run([python, "-c", prompt + solution + test + check])`` per
program, no isolation, no limits, the verdict decided inside the program.

Stdin batch: ``--stdin-programs`` programs with ``--stdin-tests`` tests each (LiveCodeBench's
shape: read numbers, print a result), judged in the sandbox (one sandbox per program, a fresh
process per test). Baseline: ``subprocess.run([python, "-c", program], input=...)`` per test.

Both run ``--workers`` at a time (threads). The per-program cost of the isolation is the
difference in seconds per program (1 / rate), and an empty sandbox's start and end is timed
beside a bare interpreter start; bare interpreter starts ``--workers`` at a time give the
ceiling for any design that starts one interpreter per program.

    .venv/bin/python benchmarks/code_sandbox.py [--rounds 3] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from dataenvgym_dagster.domain.code import CODE
from dataenvgym_dagster.domain.code.execution import TestCase
from dataenvgym_dagster.domain.code.judging import Job
from dataenvgym_dagster.domain.code.programs import CodePayload, job_of, program_of
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.machinery.sandbox import Sandbox, isolation
from dataenvgym_dagster.machinery.sandbox.sandbox import python_executable

STDIN_PROGRAM = "n = int(input())\nvalues = list(map(int, input().split()))\nprint(sum(values) % 1000003, max(values))\n"


def humaneval_jobs() -> tuple[list[Job], list[str]]:
    splits = CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", validation_per_skill=1, test_per_skill=None))
    problems = splits["validation"] + splits["test"]
    payloads = [CodePayload.of(p) for p in problems]
    programs = [program_of(payload, problem.answer)[0] for payload, problem in zip(payloads, problems, strict=True)]
    jobs = [job_of(payload, program) for payload, program in zip(payloads, programs, strict=True)]
    return jobs, [program + "\n" + (payload.test_code or "") for program, payload in zip(programs, payloads, strict=True)]


def stdin_jobs(programs: int, tests: int, seed: int = 0) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for _ in range(programs):
        cases = []
        for _ in range(tests):
            values = [rng.randint(-10**6, 10**6) for _ in range(rng.randint(1, 200))]
            cases.append(TestCase(input=f"{len(values)}\n{' '.join(map(str, values))}\n", output=f"{sum(values) % 1000003} {max(values)}\n"))
        jobs.append(Job(kind="stdin", program=STDIN_PROGRAM, tests=tuple(cases)))
    return jobs


def rate(count: int, run) -> float:  # noqa: ANN001
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="programs at a time, sandboxed and bare (threads)")
    parser.add_argument("--stdin-programs", type=int, default=40)
    parser.add_argument("--stdin-tests", type=int, default=10)
    arguments = parser.parse_args()

    he_jobs, he_bare = humaneval_jobs()
    lcb_jobs = stdin_jobs(arguments.stdin_programs, arguments.stdin_tests)
    sandbox = Sandbox(workers=arguments.workers)
    python = sys.executable  # the bare loops run programs as `python -c` would, site included (as before this sandbox)
    print(f"isolation: {isolation().name}; {os.cpu_count()} cores; {arguments.workers} workers; "
          f"{len(he_jobs)} HumanEval programs; {len(lcb_jobs)} stdin programs x {arguments.stdin_tests} tests")

    def bare_script(program: str) -> None:
        assert subprocess.run([python, "-c", program], capture_output=True, timeout=30, check=False).returncode == 0

    def bare_stdin(job: Job) -> None:
        for test in job.tests:
            done = subprocess.run([python, "-c", job.program], input=test.input, capture_output=True, text=True, timeout=30, check=False)
            assert done.stdout == test.output

    def judged(jobs: list[Job]) -> None:
        outcomes = sandbox.run_many(jobs)
        assert all(o.ok for o in outcomes), [o.describe() for o in outcomes if not o.ok][:3]

    def empty_sandboxes(count: int) -> None:
        for _ in range(count):
            with sandbox.session() as session:
                assert session.load("pass", "solution").ok

    def bare_interpreters(count: int) -> None:
        for _ in range(count):
            subprocess.run([python_executable(), "-I", "-S", "-c", "pass"], check=True)  # the sandbox's interpreter, as it starts it

    rates: dict[str, list[float]] = {}
    for round_ in range(arguments.rounds):
        with ThreadPoolExecutor(arguments.workers) as pool:
            measured = {
                "HumanEval, sandboxed": rate(len(he_jobs), lambda: judged(he_jobs)),
                "HumanEval, bare subprocess loop": rate(len(he_jobs), lambda: list(pool.map(bare_script, he_bare))),
                "stdin batch, sandboxed": rate(len(lcb_jobs), lambda: judged(lcb_jobs)),
                "stdin batch, bare subprocess loop": rate(len(lcb_jobs), lambda: list(pool.map(bare_stdin, lcb_jobs))),
                "empty sandbox start + end, sequential": rate(20, lambda: empty_sandboxes(20)),
                "bare interpreter start, sequential": rate(20, lambda: bare_interpreters(20)),
                # The ceiling for one fresh interpreter per program on this machine right now.
                f"bare interpreter starts, {arguments.workers} at a time": rate(
                    20 * arguments.workers, lambda: list(pool.map(bare_interpreters, [20] * arguments.workers))),
            }
        for name, value in measured.items():
            rates.setdefault(name, []).append(value)
        print(f"round {round_ + 1}: " + ", ".join(f"{name} {value:.1f}/s" for name, value in measured.items()))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\nmedian programs/s ({arguments.workers} at a time; machine load {os.getloadavg()[0]:.1f} at the end):")
    for name, value in median.items():
        print(f"  {name:40s} {value:7.1f}")
    for kind in ("HumanEval", "stdin batch"):
        cost = 1000 * (1 / median[f"{kind}, sandboxed"] - 1 / median[f"{kind}, bare subprocess loop"])
        print(f"  {kind}: the sandbox costs {cost:+.1f} ms of wall time per program at this concurrency")
    start = 1000 * (1 / median["empty sandbox start + end, sequential"] - 1 / median["bare interpreter start, sequential"])
    print(f"  an empty sandbox's start and end cost {start:+.1f} ms beyond a bare interpreter's start")


if __name__ == "__main__":
    main()

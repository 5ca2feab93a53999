"""Sandboxed executions per second for HumanEval's 164 canonical solutions, against a bare loop.

Each program is HumanEval's prompt + canonical solution + tests + ``check(entry_point)``. The
sandbox runs them as the code domain does (batches per isolated sandbox process, one forked
process per program, ``--workers`` sandboxes at a time); the baseline runs the same programs with
a bare ``subprocess.run([python, "-c", program])`` loop, one at a time and with the same number
of threads, without isolation or limits. The ratio is the sandbox's cost (or gain) per program.

    .venv/bin/python benchmarks/code_sandbox.py [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from dataenvgym_dagster.domain.code import CODE
from dataenvgym_dagster.domain.code.programs import CodePayload, job_of, program_of
from dataenvgym_dagster.domain.protocol import BenchmarkSpec
from dataenvgym_dagster.machinery.sandbox import Sandbox, isolation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="parallel sandboxes (and baseline threads)")
    parser.add_argument("--batch-size", type=int, default=16, help="programs per sandbox process")
    arguments = parser.parse_args()

    splits = CODE.sources["humaneval"].load(BenchmarkSpec(source="humaneval", validation_per_skill=1, test_per_skill=None))
    problems = splits["validation"] + splits["test"]
    payloads = [CodePayload.of(p) for p in problems]
    programs = [program_of(payload, problem.answer)[0] for payload, problem in zip(payloads, problems, strict=True)]
    jobs = [job_of(payload, program) for payload, program in zip(payloads, programs, strict=True)]
    bare_programs = [program + "\n" + payload.test_code for program, payload in zip(programs, payloads, strict=True)]
    sandbox = Sandbox(workers=arguments.workers, batch_size=arguments.batch_size)
    print(f"isolation: {isolation().name}; {len(jobs)} programs; {arguments.workers} workers; batches of {arguments.batch_size}")

    def bare(program: str) -> bool:
        return subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30, check=False).returncode == 0

    sandboxed_rates, bare_rates, single_rates = [], [], []
    for round_ in range(arguments.rounds):
        started = time.perf_counter()
        outcomes = sandbox.run_many(jobs)
        sandboxed_rates.append(len(jobs) / (time.perf_counter() - started))
        assert all(o.ok for o in outcomes), [o.describe() for o in outcomes if not o.ok][:3]

        started = time.perf_counter()
        for job in jobs[:32]:  # one sandbox process per program: the cost of isolating each alone
            assert sandbox.run(job).ok
        single_rates.append(32 / (time.perf_counter() - started))

        started = time.perf_counter()
        with ThreadPoolExecutor(arguments.workers) as pool:
            passed = list(pool.map(bare, bare_programs))
        bare_rates.append(len(jobs) / (time.perf_counter() - started))
        assert all(passed)
        print(
            f"round {round_ + 1}: sandboxed {sandboxed_rates[-1]:.1f}/s, one sandbox per program (sequential) {single_rates[-1]:.1f}/s, "
            f"bare subprocess.run {bare_rates[-1]:.1f}/s"
        )
    sandboxed, single, baseline = (statistics.median(r) for r in (sandboxed_rates, single_rates, bare_rates))
    print(f"\nmedian executions/s on {arguments.workers} workers:")
    print(f"  sandbox (batched, isolated, limited)  {sandboxed:7.1f}")
    print(f"  one sandbox per program, sequential   {single:7.1f}")
    print(f"  bare subprocess.run loop              {baseline:7.1f}")
    print(f"  overhead ratio (bare / sandboxed)     {baseline / sandboxed:7.2f}  (below 1: the sandbox is faster)")
    print(f"  bare loop (2 threads) / one sandbox per program (sequential) {baseline / single:5.2f}")


if __name__ == "__main__":
    main()

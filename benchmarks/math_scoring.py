"""MATH-style scoring throughput: answers verified per second by math-verify in worker processes.

Builds ``--answers`` (reference, completion) pairs from the math domain's procedural problems:
a third restate the reference in another form (a decimal for a fraction, ``\\dfrac``, a product
for an integer, ``\\sqrt{n}`` for a surd), a third are wrong (the reference plus one) and a
third are correct in the same form. Every pair goes through ``MathDomain.score`` (extract the
last box, then math-verify ``parse`` + ``verify``, gold first, in worker processes with the
per-item timeout); identical answers take the in-process shortcut, so the script reports both
the overall rate and the rate of pairs that needed math-verify. Each worker count runs
``--repeats`` times, the counts interleaved round by round (so a machine that gets busier or
quieter during the run affects them alike), and the summary gives each count's median: the
figure the default worker count (``equivalence.DEFAULT_WORKERS``) is chosen from.

    .venv/bin/python benchmarks/math_scoring.py [--answers 2000] [--workers 1 2 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from dataenvgym_dagster.domain.math import MathDomain
from dataenvgym_dagster.domain.math.equivalence import DEFAULT_WORKERS, EquivalencePool
from dataenvgym_dagster.domain.types import Problem


def restated(answer: str) -> str:
    """The same value written differently, as a student might."""
    if answer.lstrip("-").isdigit():
        number = int(answer)
        return f"{number} \\cdot 1" if number % 2 else f"2 \\cdot {number // 2}"
    if answer.startswith("\\frac") and "\\pi" not in answer and "\\sqrt" not in answer:
        numerator, denominator = answer[6:-1].split("}{")
        if int(denominator) in (2, 4, 5, 8, 10, 16, 20, 25):
            return str(int(numerator) / int(denominator))
    if "\\frac" in answer:
        return answer.replace("\\frac", "\\dfrac")
    return f"1 \\cdot {answer}"


def pairs(count: int, seed: int) -> tuple[list[Problem], list[str]]:
    domain, rng = MathDomain(), random.Random(seed)
    problems, completions = [], []
    for index in range(count):
        skill = rng.choice(domain.taxonomy.skills)
        draft = domain.sample(skill, rng)
        problems.append(Problem(example_id=str(index), skill=skill, **draft.model_dump()))
        kind = index % 3
        answer = restated(draft.answer) if kind == 0 else f"{draft.answer} + 1" if kind == 1 else draft.answer
        completions.append(f"The answer is $\\boxed{{{answer}}}$.")
    return problems, completions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count, interleaved")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per comparison")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    problems, completions = pairs(arguments.answers, arguments.seed)
    print(f"{len(problems)} answers: a third restated, a third wrong, a third identical to the reference")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; default workers: {DEFAULT_WORKERS}")
    print("| round | workers | answers/s (all) | answers/s (math-verify) | correct | timeouts | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    rates: dict[int, list[float]] = {workers: [] for workers in arguments.workers}
    for round_number in range(1, arguments.repeats + 1):
        order = arguments.workers if round_number % 2 else arguments.workers[::-1]
        for workers in order:
            pool = EquivalencePool(workers=workers, timeout_s=arguments.timeout)
            domain = MathDomain(pool=pool)
            domain.score(problems[:workers], completions[:workers])  # start and warm the workers
            started = time.perf_counter()
            scores = domain.score(problems, completions)
            seconds = time.perf_counter() - started
            judged = sum(1 for p, s in zip(problems, scores, strict=True) if s.extracted != p.answer)
            correct = sum(score.correct for score in scores)
            timeouts = sum(score.verdict == "timeout" for score in scores)
            rates[workers].append(len(scores) / seconds)
            print(f"| {round_number} | {workers} | {len(scores) / seconds:,.0f} | {judged / seconds:,.0f} | {correct} | {timeouts} | {seconds:.1f} |")
            pool.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("| workers | median answers/s (all) | runs |")
    print("|---:|---:|---|")
    for workers, measured in rates.items():
        print(f"| {workers} | {statistics.median(measured):,.0f} | {', '.join(f'{rate:,.0f}' for rate in measured)} |")
    best = max(rates, key=lambda workers: statistics.median(rates[workers]))
    print(f"fastest by median: {best} worker(s)")


if __name__ == "__main__":
    main()

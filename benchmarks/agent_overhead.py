"""What an agent adds to an iteration: building the state, the plan, checking it, and importing the agent.

Each environment observes a shipped-size validation split (arithmetic: 12 skills × 40 examples),
then every built-in policy that needs no endpoint plans an 8,000-example budget; the environment
checks each plan. An outside agent (a module written to a temporary folder) is imported fresh
each time, as a run's first ``data_generation_plan`` does. Medians over ``--repeats``, in ms.

    .venv/bin/python benchmarks/agent_overhead.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from dataenvgym_dagster.agents import ENVIRONMENTS, Observation, PolicyContext, load_policy, plan_problems
from dataenvgym_dagster.domain.arithmetic import ARITHMETIC
from dataenvgym_dagster.domain.teachers.offline import OfflineTeacher
from dataenvgym_dagster.domain.types import EvaluationRecord
from timing import median_ms  # benchmarks/timing.py, beside this script

BUDGET = 8_000
PER_SKILL = 40
AGENT = '''
from dataenvgym_dagster.agents import PlanEntry, make_plan

def policy(state, context):
    weakest = min(state.skills, key=lambda p: p.accuracy)
    return make_plan(state, "skill_list", "weakest", [PlanEntry(entry_id="w", skill=weakest.skill, count=context.budget, rationale="")])
'''


def validation() -> list[EvaluationRecord]:
    return [
        EvaluationRecord(example_id=f"{skill}/{i}", skill=skill, question=f"q{i}", reference="1", prediction="1" if i % 3 else "0",
                         correct=bool(i % 3), answer_loss=0.1 * (i % 7))
        for skill in ARITHMETIC.taxonomy.skills for i in range(PER_SKILL)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    repeats = parser.parse_args().repeats
    records = validation()
    context = PolicyContext(budget=BUDGET, seed=0, proposer=OfflineTeacher(ARITHMETIC))
    print(f"| environment | state (ms) | render (ms) | policy | plan (ms) | check (ms) |\n|---|---:|---:|---|---:|---:|")
    for name, environment in ENVIRONMENTS.items():
        observation = Observation(domain="arithmetic", experiment="bench", iteration=1, taxonomy=ARITHMETIC.taxonomy, validation=records)
        state = environment.observe(observation)
        observe_ms = median_ms(lambda: environment.observe(observation), repeats)
        render_ms = median_ms(state.render, repeats)
        for policy, spec in environment.policies.items():
            if spec.needs_chat:
                continue
            plan = spec.policy(state, context)
            plan_ms = median_ms(lambda: spec.policy(state, context), repeats)
            check_ms = median_ms(lambda: plan_problems(environment, state, plan, BUDGET), repeats)
            print(f"| {name} | {observe_ms:.2f} | {render_ms:.2f} | {policy} | {plan_ms:.2f} | {check_ms:.2f} |")

    folder = Path(tempfile.mkdtemp(prefix="dataenvgym-agent-"))
    (folder / "bench_agent.py").write_text(AGENT)
    sys.path.insert(0, str(folder))

    def fresh_import():
        sys.modules.pop("bench_agent", None)
        importlib.invalidate_caches()
        return load_policy("skill_list", "bench_agent:policy")

    print(f"\nimporting an outside agent by import path (and hashing its source): {median_ms(fresh_import, repeats):.2f} ms")
    print(f"loading a built-in policy with its version: {median_ms(lambda: load_policy('skill_list', 'learnable'), repeats):.2f} ms")


if __name__ == "__main__":
    main()

"""Agents end to end on micro settings: each environment's LLM agent against the local test server
(a plumbing check, not a result), and an outside agent (a module in a temporary folder, named by
import path) run offline on two domains with its per-skill test gains.

    .venv/bin/python benchmarks/agents_table.py [--size micro|small] [--skip-llm]

``micro``: the tests' micro students (one layer, 32 wide), 128 examples per iteration: minutes on a
laptop CPU, and a student too small to answer anything (a plumbing check only). ``small``: the
shipped catalogue's students (4 layers, 128 wide) on a 6,000-example pretraining corpus, 20
validation and test problems per skill and 1,000 examples per iteration: gains the agent makes.
2 iterations either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import run_experiment
from dataenvgym_dagster.defs.resources import home_warehouse
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG, MICRO_TRAINING
from dataenvgym_dagster_tests.openai_server import OpenAITestServer, PolicyResponder
from dataenvgym_dagster_tests.test_tool_use_end_to_end import TOOL_USE_MICRO

BUDGET = 128
AGENT = '''
from dataenvgym_dagster.agents import PlanEntry, PolicyAction, allocate, make_plan


def policy(state, context):
    """The two least accurate skills get as much weight as all skills together (about 70 % of the budget), the rest evenly."""
    weakest = {p.skill for p in sorted(state.skills, key=lambda p: (p.accuracy, p.skill))[:2]}
    weights = {p.skill: (len(state.skills) if p.skill in weakest else 1.0) for p in state.skills}
    counts = allocate(context.budget, weights)
    entries = [PlanEntry(entry_id=f"iteration_{state.iteration}/{s}", skill=s, count=n, rationale="curriculum") for s, n in counts.items()]
    actions = [PolicyAction(skill=p.skill, action="allocate", reward=p.reward, observed_accuracy=p.accuracy,
                            detail={"count": counts[p.skill]}) for p in state.skills]
    return make_plan(state, "skill_list", "curriculum", entries, actions)


policy.environment = "skill_list"
'''
# The tests' micro domains: arithmetic (4 validation and test problems per skill) and tool use.
CATALOG = {
    "iterations": 2,
    "default_experiment": "llm_skill_list",
    "domains": {**MICRO_CATALOG["domains"], **TOOL_USE_MICRO["domains"]},
    "experiments": {
        **{
            f"llm_{environment}": {"domains": ["arithmetic"], "environment": environment, "policy": "llm", "data_budget": BUDGET,
                                   "training": {"settings": MICRO_TRAINING}}
            for environment in ("open_ended", "skill_list", "skill_tree")
        },
        "curriculum": {"policy": "curriculum_agent:policy", "data_budget": BUDGET, "training": {"settings": MICRO_TRAINING}},
    },
}


def small_domains() -> dict:
    """The shipped catalogue's arithmetic and tool_use students, on a smaller corpus and benchmark."""
    shipped = load_catalog(Path(__file__).parents[1] / "dataenvgym_dagster" / "experiments" / "experiments.yaml")
    domains = {}
    for name in ("arithmetic", "tool_use"):
        settings = shipped.domain(name).model_dump(mode="json", exclude_defaults=False)
        settings["base_student"]["pretraining_examples"] = 6_000
        settings["benchmark"].update(validation_per_skill=20, test_per_skill=20)
        domains[name] = settings
    return domains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("micro", "small"), default="micro")
    parser.add_argument("--skip-llm", action="store_true", help="only the outside agent on two domains")
    arguments = parser.parse_args()
    catalog = dict(CATALOG)
    if arguments.size == "small":
        catalog["domains"] = small_domains()
        catalog["experiments"] = {
            name: {**settings, "data_budget": 1_000, "training": {"settings": {"learning_rate": 0.001, "batch_size": 64, "epochs": 1}}}
            for name, settings in CATALOG["experiments"].items()
        }
    root = Path(tempfile.mkdtemp(prefix="dataenvgym-agents-"))
    (root / "curriculum_agent.py").write_text(AGENT)
    sys.path.insert(0, str(root))
    (root / "experiments.yaml").write_text(yaml.safe_dump(catalog))
    catalog = load_catalog(root / "experiments.yaml")
    home = root / "home"
    defs = build_definitions(catalog, str(home), root / "experiments.yaml")
    instance = DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with OpenAITestServer(responder=PolicyResponder()) as server:
        os.environ.update({"DATAENVGYM_TEACHER_BASE_URL": server.base_url, "DATAENVGYM_TEACHER_MODEL": "test-policy"})
        seconds = {}
        llm = [] if arguments.skip_llm else [("arithmetic", f"llm_{e}") for e in ("open_ended", "skill_list", "skill_tree")]
        for domain, experiment in llm + [("arithmetic", "curriculum"), ("tool_use", "curriculum")]:
            started = time.perf_counter()
            results = run_experiment(defs, instance, domain, experiment, quiet, say=lambda line: None)
            if not all(result.success for result in results):
                raise SystemExit(f"{domain}|{experiment} failed; see the run's events")
            seconds[domain, experiment] = time.perf_counter() - started
    db = home_warehouse(home).connect()

    if arguments.skip_llm:
        return curriculum_table(db, seconds)
    print(f"LLM agents against the local test server (PolicyResponder), arithmetic, {arguments.size} student, 2 iterations:\n")
    print("| environment | examples planned (it1, it2) | policy calls | refused replies | test accuracy it0 → it2 | wall (s) |")
    print("|---|---|---:|---:|---|---:|")
    for environment in ("open_ended", "skill_list", "skill_tree"):
        experiment = f"llm_{environment}"
        planned = [n for (n,) in db.execute(
            "SELECT sum(count) FROM data_generation_plans WHERE experiment = ? GROUP BY iteration ORDER BY iteration", [experiment]).fetchall()]
        calls, refused = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'refused') FROM teacher_calls WHERE experiment = ? AND purpose LIKE 'policy:%'",
            [experiment]).fetchone()
        accuracy = dict(db.execute(
            "SELECT iteration, accuracy FROM accuracy_by_iteration WHERE experiment = ? AND split = 'test'", [experiment]).fetchall())
        print(f"| {environment} | {planned} | {calls} | {refused} | {accuracy[0]:.1%} → {accuracy[2]:.1%} | {seconds['arithmetic', experiment]:.0f} |")
    curriculum_table(db, seconds)


def curriculum_table(db, seconds: dict) -> None:
    version = db.execute("SELECT DISTINCT policy_version FROM experiment_runs WHERE experiment = 'curriculum'").fetchone()[0]
    print(f"\nAn outside agent (curriculum_agent:policy, version {version}) offline, per-skill test gain it0 → it2:\n")
    print("| domain | skill | n | it0 | it2 | gain (points) |\n|---|---|---:|---:|---:|---:|")
    rows = db.execute(
        """SELECT domain, skill, max(n), max(accuracy) FILTER (WHERE iteration = 0), max(accuracy) FILTER (WHERE iteration = 2)
           FROM skill_accuracy WHERE experiment = 'curriculum' AND split = 'test' GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    for domain, skill, n, base, final in rows:
        print(f"| {domain} | {skill} | {n} | {base:.0%} | {final:.0%} | {100 * (final - base):+.0f} |")
    for domain in ("arithmetic", "tool_use"):
        print(f"\n{domain}|curriculum: {seconds[domain, 'curriculum']:.0f} s wall")


if __name__ == "__main__":
    main()

"""The leaderboard suite, scaled down to fit a small CPU machine: runs it, then prints the table.

Takes the shipped catalogue's domains and its ``table2`` suite (domains × the three environments ×
the best state-reading agent of each environment, the blind baselines, the negative control ×
seeds), scales the benchmark, the base student's pretraining and the data budget down as told,
writes that catalogue into its own home and runs the suite there through Dagster (partitions
already finished in that home are skipped, so an interrupted run resumes). Then prints the
leaderboard of the suite as Markdown, with the machine and the time it took.

    .venv/bin/python benchmarks/leaderboard_suite.py [--scale small] [--head-start] [--domains arithmetic code tool_use]
        [--drift] [--seeds 0 1 2] [--budget 4000] [--iterations 2] [--per-skill 20] [--agents learnable uniform negative_control]

``--scale small`` is the grid measured in docs/leaderboard.md (each option given after it still
wins). ``--head-start`` changes the environment, not the agents: each domain's base student is
pretrained only on the skills the shipped mixture weights most (weight >= 2; the others barely,
``head_start`` in the catalogue), so it starts out mastering some skills and not others; such a
run keeps its own home (``<home>-head-start``), as its foundations differ. ``--drift`` changes the
environment too: the offline teacher drifts (``offline_drift`` in the catalogue, ``DRIFTS`` here):
on five of arithmetic's twelve skills 90 % of what it writes are comparisons, correct and labelled
with the skill asked for, so funding those skills teaches them little; such a run keeps its own
home (``<home>-drift``). ``--scale table2`` is the shipped catalogue's size (``make table2``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from dataenvgym_dagster import leaderboard
from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.resources import default_home
from dataenvgym_dagster.defs.suites import run_suite
from dataenvgym_dagster.experiments.config import CATALOG_ENV_VAR, DEFAULT_CATALOG, SuiteSettings, load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse

SUITE = "table2"  # the shipped catalogue's suite this benchmark scales down
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# Named scales: the settings of a published measurement, so that it can be run again exactly.
SCALES = {
    # docs/leaderboard.md: 81 runs (3 domains x 3 environments x 3 agents x 3 seeds) in about an hour on 2 shared CPUs.
    "small": {"budget": 500, "iterations": 1, "per_skill": 20, "pretraining": 8000},
    # The shipped catalogue's arithmetic (make table2): where the student learns, 15 to 27 points in 3 iterations.
    "table2": {"budget": 8000, "iterations": 3, "per_skill": 40, "pretraining": 20000},
}
# --drift: the imperfect offline teacher per domain. Arithmetic: five of twelve skills, those a blind even split
# funds as much as any, drift 90 % into comparisons (correct problems the student mostly answers already).
DRIFTS = {
    "arithmetic": {
        "skills": ["addition/two_digit_carry", "addition/three_digit", "subtraction/borrow", "multiplication/two_by_one_digit",
                   "modulo/by_one_digit"],
        "rate": 0.9,
        "into": ["comparison/two_digit", "comparison/three_digit"],
    },
}
HEAD_START_WEIGHT = 2.0  # skills the shipped mixture weights at least this much get the head start


def head_start(settings: dict) -> dict:
    """The domain's base student with a head start on the skills its shipped mixture weights most."""
    mixture = settings["pretraining_mixture"]
    skills = [skill for skill, weight in mixture.items() if weight >= HEAD_START_WEIGHT]
    base = {key: value for key, value in settings.items() if key != "pretraining_mixture"}
    return {**base, "head_start": {"skills": skills}}


def scaled_catalog(arguments: argparse.Namespace) -> dict:
    """The shipped catalogue with the suite (and only it) at the sizes asked for."""
    raw = {k: v for k, v in yaml.safe_load(DEFAULT_CATALOG.read_text()).items() if not k.startswith("x-")}
    suite = raw["suites"][SUITE]
    domains = {}
    for name in arguments.domains:
        settings = raw["domains"][name]
        benchmark = {**settings["benchmark"], "validation_per_skill": arguments.per_skill, "test_per_skill": arguments.per_skill}
        base = {**settings["base_student"], "pretraining_examples": min(settings["base_student"]["pretraining_examples"], arguments.pretraining)}
        if arguments.head_start:
            base = head_start(base)
        domains[name] = {**settings, "benchmark": benchmark, "base_student": base, "default_experiment": None}
        if arguments.drift:
            if name not in DRIFTS:
                raise SystemExit(f"--drift is defined for {', '.join(DRIFTS)} only; add {name} to DRIFTS or leave it out of --domains")
            domains[name]["offline_drift"] = DRIFTS[name]
    shared = {**suite["settings"], "data_budget": arguments.budget}
    if arguments.replay_fraction is not None:  # how much of each iteration's training data is replay, not the agent's
        shared["training"] = {**shared["training"], "replay_fraction": arguments.replay_fraction}
    environments = arguments.environments or suite["environments"]
    agents = arguments.agents or suite["agents"]
    if isinstance(agents, dict):  # agents per environment: only those of the environments kept
        agents = {environment: names for environment, names in agents.items() if environment in environments}
    suite = {**suite, "domains": arguments.domains, "environments": environments, "agents": agents, "seeds": arguments.seeds, "settings": shared}
    catalog = {"iterations": arguments.iterations, "domains": domains, "experiments": {}, "suites": {arguments.name: suite}}
    first = next(iter(SuiteSettings.model_validate(suite).experiments(arguments.name)))
    return {**catalog, "default_experiment": f"{first}_seed{arguments.seeds[0]}"}


def run_seconds(instance: DagsterInstance, partitions: set[str]) -> dict[str, list[float]]:
    """Whole-run wall time of each finished partition (``domain|experiment``), per domain: the seconds from
    each of its Dagster runs' start to end, failed ones included, summed (a resumed partition has several).
    Not in the warehouse, whose leaderboard has only the student's training seconds."""
    seconds: dict[str, float] = {}
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE])):
        partition = record.dagster_run.tags.get("dagster/partition", "")
        if partition in partitions and record.start_time and record.end_time:
            seconds[partition] = seconds.get(partition, 0.0) + record.end_time - record.start_time
    by_domain: dict[str, list[float]] = {}
    for partition, total in sorted(seconds.items()):
        by_domain.setdefault(partition.split("|", 1)[0], []).append(total)
    return by_domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default=None, help="a named scale (options given too still win)")
    parser.add_argument(
        "--head-start", action="store_true",
        help="change the environment: base students pretrained on their most-weighted skills only (see above)",
    )
    parser.add_argument(
        "--drift", action="store_true",
        help="change the environment: an imperfect offline teacher that drifts off some skills (DRIFTS; arithmetic only)",
    )
    parser.add_argument("--domains", nargs="+", default=["arithmetic", "code", "tool_use"])
    parser.add_argument("--environments", nargs="+", default=None, help="default: the suite's (all three)")
    parser.add_argument("--agents", nargs="+", default=None, help="default: the suite's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=4000, help="generated examples per iteration (1000 teaches this student nothing)")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument(
        "--replay-fraction", type=float, default=None,
        help="share of each iteration's training set replayed, balanced over skills (default: the suite's, 0.5); "
        "0 gives the agent's plan all of it",
    )
    parser.add_argument("--per-skill", type=int, default=20, help="validation and test examples per skill")
    parser.add_argument("--pretraining", type=int, default=20000, help="at most this many pretraining examples per base student")
    parser.add_argument(
        "--name", default=SUITE,
        help="the suite's name in this home: another name keeps the runs of other settings apart (and reuses the foundations)",
    )
    parser.add_argument(
        "--run-only", nargs="+", default=None, metavar="PREFIX",
        help="run only partitions whose 'domain|experiment' starts with one of these (e.g. 'code|table2.skill_list'); "
        "the table still shows every finished run of the suite",
    )
    parser.add_argument("--home", type=Path, default=default_home() / "benchmarks" / "leaderboard")
    scale, _ = parser.parse_known_args()
    if scale.scale:
        parser.set_defaults(**SCALES[scale.scale])
    arguments = parser.parse_args()

    home = arguments.home.absolute()
    for changed in ("head_start", "drift"):  # a changed environment keeps its own home
        if getattr(arguments, changed):
            home = home.with_name(f"{home.name}-{changed.replace('_', '-')}")
    home.mkdir(parents=True, exist_ok=True)
    catalog_file = home / "experiments.yaml"
    catalog_file.write_text(yaml.safe_dump(scaled_catalog(arguments), sort_keys=False))
    os.environ[CATALOG_ENV_VAR] = str(catalog_file)
    catalog = load_catalog(catalog_file)
    defs = build_definitions(catalog, str(home), catalog_file, storage=str(home))
    (home / "dagster").mkdir(exist_ok=True)
    instance = DagsterInstance.local_temp(str(home / "dagster"))  # persistent: finished partitions are skipped next time

    started = time.perf_counter()
    prefixes = tuple(arguments.run_only or ("",))
    progress = run_suite(defs, instance, catalog, arguments.name, QUIET, only=lambda partition: partition.startswith(prefixes))
    elapsed = time.perf_counter() - started
    board = leaderboard.load(Warehouse(home), set(catalog.suite(arguments.name).experiments(arguments.name)))
    print()
    print(leaderboard.markdown(board))
    print(
        f"\nSuite {arguments.name}: {len(progress.done)}/{progress.total} partitions, {len(progress.failed)} failed; this run took "
        f"{elapsed / 60:.1f} min on {platform.machine()} with {os.cpu_count()} CPUs ({platform.processor() or platform.platform()}). "
        f"Budget {arguments.budget} per iteration, {arguments.iterations} iterations, {arguments.per_skill} validation and "
        f"test examples per skill, base students pretrained on at most {arguments.pretraining} examples"
        f"{' with a head start' if arguments.head_start else ''}{' with a drifting offline teacher' if arguments.drift else ''} "
        f"(scale: {arguments.scale or 'options'}); load average "
        f"{' '.join(f'{load:.2f}' for load in os.getloadavg())} at the end."
    )
    walls = run_seconds(instance, set(progress.done))
    print("Whole-run wall time per partition (Dagster run start to end), mean [min, max]: " + "; ".join(
        f"{domain} {sum(values) / len(values):.0f} s [{min(values):.0f}, {max(values):.0f}] over {len(values)} runs"
        for domain, values in walls.items()
    ))
    print(f"HTML: dataenvgym leaderboard --suite {arguments.name} --format html (DATAENVGYM_HOME={home} DATAENVGYM_EXPERIMENTS={catalog_file})")


if __name__ == "__main__":
    main()

"""Every environment with and without state on arithmetic, over several seeds: the Table 2 in docs/concepts/environments.md.

Runs each experiment of the shipped catalogue once per seed (partitions ``<name>_seed<seed>``)
through Dagster in its own home, then prints the ``gain_by_policy`` view as Markdown. Runs that
already finished in that home are skipped, so an interrupted benchmark resumes.

    .venv/bin/python benchmarks/environments_table.py [--seeds 0 1 2] [--experiments skill_list skill_tree ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance

from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import FOUNDATIONS_JOB, TEACHING_LOOP_JOB
from dataenvgym_dagster.defs.partitions import loop_partition_key, register_experiments
from dataenvgym_dagster.defs.resources import default_home
from dataenvgym_dagster.experiments.config import CATALOG_ENV_VAR, DEFAULT_CATALOG, load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse
from dataenvgym_dagster.report import gain_by_policy_markdown

PAIRS_FIRST = [
    "skill_list", "skill_list_no_state", "open_ended", "open_ended_no_state", "skill_tree", "skill_tree_no_state",
    "skill_list_weak_skills", "skill_list_uniform", "skill_list_random_skill",
]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def seeded_catalog(seeds: list[int], names: list[str] | None) -> dict:
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    unknown = set(names or ()) - set(raw["experiments"])
    if unknown:
        raise SystemExit(f"unknown experiments {sorted(unknown)}; the catalogue has {', '.join(raw['experiments'])}")
    # Runs go in the order given: the with/without-state pairs first by default, extra baselines last.
    experiments = {name: {**raw["experiments"][name], "seeds": seeds} for name in names or raw["experiments"]}
    first = next(iter(experiments))
    return {**{k: v for k, v in raw.items() if not k.startswith("x-")}, "experiments": experiments, "default_experiment": f"{first}_seed{seeds[0]}"}


def finished(warehouse: Warehouse, domain: str, experiment: str, iterations: int) -> bool:
    with warehouse.connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM evaluation_results WHERE domain = ? AND experiment = ? AND split = 'test' AND iteration = ?",
            [domain, experiment, iterations],
        ).fetchone()
    return bool(row and row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--experiments", nargs="+", default=PAIRS_FIRST, help="names from the shipped catalogue, run in this order")
    parser.add_argument("--domain", default="arithmetic")
    parser.add_argument("--home", type=Path, default=default_home() / "benchmarks" / "environments")
    arguments = parser.parse_args()

    home = arguments.home.absolute()
    home.mkdir(parents=True, exist_ok=True)
    catalog_file = home / "experiments.yaml"
    catalog_file.write_text(yaml.safe_dump(seeded_catalog(arguments.seeds, arguments.experiments), sort_keys=False))
    os.environ[CATALOG_ENV_VAR] = str(catalog_file)
    catalog = load_catalog(catalog_file)
    defs = build_definitions(catalog, str(home), catalog_file, storage=str(home))
    instance = DagsterInstance.ephemeral()
    register_experiments(instance, catalog.runs)  # experiments are dynamic partitions
    warehouse = Warehouse(home)

    if not (home / "checkpoints" / arguments.domain / "base").exists():
        print(f"== foundations for {arguments.domain}", flush=True)
        result = defs.resolve_job_def(FOUNDATIONS_JOB).execute_in_process(partition_key=arguments.domain, instance=instance, run_config=QUIET, raise_on_error=False)
        if not result.success:
            raise SystemExit("the foundations failed; run `make run` to see the error")
    for experiment in catalog.runs:
        if finished(warehouse, arguments.domain, experiment, catalog.iterations):
            print(f"== {experiment}: already finished in {home}", flush=True)
            continue
        started = time.perf_counter()
        result = defs.resolve_job_def(TEACHING_LOOP_JOB).execute_in_process(
            partition_key=loop_partition_key(arguments.domain, experiment), instance=instance, run_config=QUIET, raise_on_error=False
        )
        print(f"== {experiment}: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.0f} s", flush=True)
        if not result.success:
            raise SystemExit(f"{experiment} failed (see the log above); fix it and rerun: finished runs are kept")
    print()
    print(gain_by_policy_markdown(warehouse, arguments.domain))
    print(f"\nAccuracies in percent; query the view yourself: dataenvgym sql 'FROM gain_by_policy'")


if __name__ == "__main__":
    main()

"""``dataenvgym``: run an experiment end to end through Dagster and print what the student learnt."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dataenvgym_dagster.defs.resources import default_home


def _instance(home: Path):
    """The persistent Dagster instance under ``$DAGSTER_HOME`` (default ``<home>/dagster``), shared with the UI."""
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").touch()  # an empty file: default local storage, without Dagster's notice
    from dagster import DagsterInstance

    return DagsterInstance.get()


def run(domain: str, experiment: str | None) -> int:
    from dataenvgym_dagster.definitions import build_definitions
    from dataenvgym_dagster.defs.jobs import run_experiment
    from dataenvgym_dagster.experiments import load_catalog
    from dataenvgym_dagster.machinery.warehouse import Warehouse
    from dataenvgym_dagster.report import format_table, skill_table, test_gain

    catalog = load_catalog()
    experiment = experiment or catalog.domain(domain).default_experiment or catalog.default_experiment
    catalog.experiment(experiment)  # fail early with the known names
    home = default_home()
    definitions = build_definitions(catalog, str(home))
    instance = _instance(home)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    started = time.perf_counter()
    failed = [result for result in run_experiment(definitions, instance, domain, experiment, quiet) if not result.success]
    if failed:
        print(f"{failed[0].job_def.name} failed; see the error above or the run in the Dagster UI", file=sys.stderr)
        return 1
    warehouse = Warehouse(home)
    print(f"\nPer-skill accuracy for {domain}|{experiment} (val = validation, test = test; itN = iteration N):")
    print(format_table(skill_table(warehouse, domain, experiment)))
    print("\nPer-skill answer loss (mean cross-entropy of the reference answer, nats/token; lower is better):")
    print(format_table(skill_table(warehouse, domain, experiment, value="answer_loss")))
    last, base, final = test_gain(warehouse, domain, experiment)
    print(
        f"\nTest accuracy: iteration 0 {base:.1%} -> iteration {last} {final:.1%} "
        f"(gain {100 * (final - base):+.1f} points) in {time.perf_counter() - started:.0f} s"
    )
    print(f"Warehouse: duckdb {warehouse.database}  |  UI: DAGSTER_HOME={os.environ['DAGSTER_HOME']} dagster dev -w workspace.yaml")
    return 0


def compare(domain: str | None) -> int:
    from dataenvgym_dagster.machinery.warehouse import Warehouse
    from dataenvgym_dagster.report import gain_by_policy_markdown

    print(gain_by_policy_markdown(Warehouse(default_home()), domain))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataenvgym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialise one experiment on one domain, every iteration")
    run_parser.add_argument("--domain", default="arithmetic")
    run_parser.add_argument("--experiment", default=None, help="default: the domain's default_experiment, else the catalogue's")
    compare_parser = commands.add_parser("compare", help="print the gain_by_policy view (the paper's Table 2) of the warehouse")
    compare_parser.add_argument("--domain", default=None)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "compare":
            return compare(arguments.domain)
        return run(arguments.domain, arguments.experiment)
    except (KeyError, ValueError, LookupError) as error:
        print(f"dataenvgym: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``dataenvgym``: run an experiment end to end through Dagster and print what the student learnt."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dataenvgym_dagster.defs.resources import HOME_ENV_VAR, default_home

# The instance settings `dataenvgym` and `make ui` write into an empty or missing dagster.yaml:
# default local storage, plus run monitoring, so that runs that never start, or never finish
# cancelling, end as failed instead of hanging in the UI (the daemon of `dagster dev` applies it).
# Runs whose process was killed are marked failed by `fail_abandoned_runs` (CLI start, sensor tick).
INSTANCE_SETTINGS = """\
# Written by dataenvgym (see cli.py). Edit freely: a non-empty file is never overwritten.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  poll_interval_seconds: 30
"""


class HomeError(OSError):
    """``$DATAENVGYM_HOME`` (or ``$DAGSTER_HOME``) is not a usable folder."""


def prepare_dagster_home(home: Path) -> Path:
    """``$DAGSTER_HOME`` (default ``<home>/dagster``), created, with instance settings if it had none."""
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    variable = "DAGSTER_HOME" if dagster_home != home / "dagster" else HOME_ENV_VAR
    try:
        home.mkdir(parents=True, exist_ok=True)
        dagster_home.mkdir(parents=True, exist_ok=True)
        settings = dagster_home / "dagster.yaml"
        if not settings.exists() or not settings.read_text().strip():
            settings.write_text(INSTANCE_SETTINGS)
    except OSError as error:
        value = os.environ.get(variable, str(home))
        raise HomeError(
            f"{variable}={value} is not a usable folder ({error.strerror}: {error.filename}); "
            f"set {variable} to a writable directory, e.g. export {variable}=$HOME/dataenvgym"
        ) from None
    return dagster_home


def _instance(home: Path):
    """The persistent Dagster instance under ``$DAGSTER_HOME`` (default ``<home>/dagster``), shared with the UI.

    Runs left in progress by a killed process are marked failed first."""
    prepare_dagster_home(home)
    from dagster import DagsterInstance

    from dataenvgym_dagster.defs.jobs import fail_abandoned_runs

    instance = DagsterInstance.get()
    for run_id in fail_abandoned_runs(instance):
        print(f"marked run {run_id} as failed: its process was killed before it finished", file=sys.stderr)
    return instance


def run(domain: str, experiment: str | None, force: bool = False) -> int:
    from dataenvgym_dagster.definitions import build_definitions
    from dataenvgym_dagster.defs.jobs import run_experiment
    from dataenvgym_dagster.experiments import load_catalog
    from dataenvgym_dagster.defs.resources import home_warehouse
    from dataenvgym_dagster.report import format_table, skill_table, test_gain

    catalog = load_catalog()
    experiment = experiment or catalog.domain(domain).default_experiment or catalog.default_experiment
    catalog.check_pair(domain, experiment)  # fail early with the known names and the experiment's domains
    home = default_home()
    definitions = build_definitions(catalog, str(home))
    instance = _instance(home)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    started = time.perf_counter()
    seed = catalog.experiment(experiment).seed
    results = run_experiment(definitions, instance, domain, experiment, quiet, force=force, seed=seed)
    failed = [result for result in results if not result.success]
    if failed:
        print(f"{failed[0].job_def.name} failed; see the error above or the run in the Dagster UI", file=sys.stderr)
        return 1
    warehouse = home_warehouse(home)
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
    from dataenvgym_dagster.defs.resources import home_warehouse
    from dataenvgym_dagster.report import gain_by_policy_markdown

    print(gain_by_policy_markdown(home_warehouse(), domain))
    return 0


def schema(environment: str) -> int:
    """Print the JSON Schemas of an environment's state and plan, its actions and its rules."""
    import json

    from dataenvgym_dagster.agents import environment_schema

    print(json.dumps(environment_schema(environment), indent=2))
    return 0


def doctor() -> int:
    """Name damaged warehouse files (and what to re-materialise) and mark runs whose process died as failed."""
    from dataenvgym_dagster.defs.resources import home_warehouse

    home = default_home()
    _instance(home)
    damaged = home_warehouse(home).damaged_files()
    for damage in damaged:
        print(damage.describe())
    if not damaged:
        print(f"{home}: every warehouse file is readable")
    return 1 if damaged else 0


def _explain_query_failure(error: Exception) -> str:
    """A DuckDB error over the warehouse, with the damaged files that caused it if there are any."""
    from dataenvgym_dagster.defs.resources import home_warehouse

    damaged = home_warehouse().damaged_files()
    if not damaged:
        return f"a warehouse query failed: {error}"
    return "a warehouse query failed because of damaged files:\n" + "\n".join(d.describe() for d in damaged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataenvgym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialise one experiment on one domain, every iteration")
    run_parser.add_argument("--domain", default="arithmetic")
    run_parser.add_argument("--experiment", default=None, help="default: the domain's default_experiment, else the catalogue's")
    run_parser.add_argument("--force", action="store_true", help="redo every asset, not only missing or stale ones")
    commands.add_parser("doctor", help="find damaged warehouse files and runs left in progress by a killed process")
    commands.add_parser("instance", help="create $DAGSTER_HOME with its settings (what `make ui` calls) and print it")
    compare_parser = commands.add_parser("compare", help="print the gain_by_policy view (the paper's Table 2) of the warehouse")
    compare_parser.add_argument("--domain", default=None)
    schema_parser = commands.add_parser("schema", help="print the JSON Schema of an environment's state and plan (for agents)")
    schema_parser.add_argument("environment", choices=["open_ended", "skill_list", "skill_tree"])
    arguments = parser.parse_args(argv)
    import duckdb

    try:
        if arguments.command == "compare":
            return compare(arguments.domain)
        if arguments.command == "schema":
            return schema(arguments.environment)
        if arguments.command == "doctor":
            return doctor()
        if arguments.command == "instance":
            print(prepare_dagster_home(default_home()))
            return 0
        return run(arguments.domain, arguments.experiment, arguments.force)
    except (KeyError, ValueError, LookupError, HomeError) as error:
        print(f"dataenvgym: {error}", file=sys.stderr)
        return 2
    except duckdb.Error as error:
        print(f"dataenvgym: {_explain_query_failure(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``dataenvgym``: run an experiment end to end through Dagster and print what the student learnt."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Settings, creation and damage of the home's Dagster instance live in defs/instance.py (INSTANCE_SETTINGS
# is imported from here by tests and benchmarks).
from dataenvgym_dagster.defs.instance import INSTANCE_SETTINGS, HomeError, InstanceStorageError, prepare_dagster_home  # noqa: F401
from dataenvgym_dagster.defs.resources import default_home
from dataenvgym_dagster.sql import add_sql_arguments, sql_command


def _instance(home: Path, cause_of_death: str | None = None):
    """The persistent Dagster instance under ``$DAGSTER_HOME`` (default ``<home>/dagster``), shared with the UI,
    created by whichever process comes first. Runs left in progress by a killed process are marked failed
    first (``cause_of_death``: why their process died, when known)."""
    from dataenvgym_dagster.defs.instance import open_instance
    from dataenvgym_dagster.defs.jobs import fail_abandoned_runs

    instance = open_instance(home)
    for run_id in fail_abandoned_runs(instance, cause_of_death):
        print(f"marked run {run_id} as failed: its process ended before it finished", file=sys.stderr)
    return instance


def run(domain: str, experiment: str | None, force: bool = False, wait: bool = False) -> int:
    from dataenvgym_dagster.definitions import build_definitions
    from dataenvgym_dagster.defs.jobs import check_benchmark, run_experiment
    from dataenvgym_dagster.experiments import load_catalog
    from dataenvgym_dagster.defs.resources import home_warehouse
    from dataenvgym_dagster.machinery.locks import full_disk_message, is_disk_full
    from dataenvgym_dagster.report import format_table, skill_table, test_gain

    catalog = load_catalog()
    experiment = experiment or catalog.domain(domain).default_experiment or catalog.default_experiment
    catalog.check_pair(domain, experiment)  # fail early with the known names and the experiment's domains
    home = default_home()
    check_benchmark(catalog, domain, home, force)  # a missing benchmark file is said before anything is written
    definitions = build_definitions(catalog, str(home))
    instance = _instance(home)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    started = time.perf_counter()
    seed = catalog.experiment(experiment).seed
    from dataenvgym_dagster.defs.event_log_complaints import held_event_log_complaints

    with held_event_log_complaints() as complaints:
        try:
            results = run_experiment(definitions, instance, domain, experiment, quiet, force=force, seed=seed, wait=wait)
        except Exception as error:
            if is_disk_full(error):  # Dagster could not even record the failure: do it with the space kept for that
                _fail_for_full_disk(instance, home, complaints)
            raise
    failed = [result for result in results if not result.success]
    if failed:
        from dataenvgym_dagster.defs.failures import explain_failure

        print(f"dataenvgym: {explain_failure(failed[0], home)}", file=sys.stderr)
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
    print(f"Query the warehouse: dataenvgym sql (a read-only shell) or dataenvgym sql 'FROM accuracy_by_iteration'  |  UI: make ui")
    return 0


def _fail_for_full_disk(instance, home: Path, complaints: list[str]) -> None:
    """Mark this process's runs failed for the full disk, with Dagster's ``complaints`` about log lines it could
    not record (then emptied: they are in the run's record, and the terminal gets only the one line)."""
    from dataenvgym_dagster.defs.instance import release_space_reserve
    from dataenvgym_dagster.defs.jobs import fail_own_runs
    from dataenvgym_dagster.machinery.locks import full_disk_message

    release_space_reserve(Path(os.environ["DAGSTER_HOME"]))
    cause = full_disk_message(home)
    if complaints:
        cause += f". Dagster could not record {len(complaints)} log line(s) before: " + " | ".join(complaints)
    try:
        fail_own_runs(instance, cause)
    except Exception:  # noqa: BLE001 - nothing more can be recorded; the terminal still gets the one line
        return
    complaints.clear()


def compare(domain: str | None) -> int:
    from dataenvgym_dagster.defs.resources import home_warehouse
    from dataenvgym_dagster.report import gain_by_policy_markdown

    print(gain_by_policy_markdown(home_warehouse(), domain))
    return 0


def status() -> int:
    """What is missing or out of date for each partition the catalogue runs (the UI counts invalid pairs too), and
    for each out-of-date asset the input that is newer (what each asset's up_to_date check shows in the UI)."""
    from dataenvgym_dagster.definitions import build_definitions
    from dataenvgym_dagster.defs.status import experiment_status
    from dataenvgym_dagster.experiments import load_catalog

    home = default_home()
    catalog = load_catalog()
    for line in experiment_status(build_definitions(catalog, str(home)), _instance(home), catalog):
        print("\n".join([line.describe(), *line.why()]))
    return 0


def schema(environment: str) -> int:
    """Print the JSON Schemas of an environment's state and plan, its actions and its rules."""
    import json

    from dataenvgym_dagster.agents import environment_schema

    print(json.dumps(environment_schema(environment), indent=2))
    return 0


def doctor(repair: bool = False) -> int:
    """Name what is wrong with the home, one line each with the fix: a full disk, damaged instance storage,
    damaged warehouse files and plots, runs whose process died (marked failed, with the cause)."""
    from dataenvgym_dagster.defs.instance import damaged_instance_files, release_space_reserve, repair_version_tables
    from dataenvgym_dagster.defs.metadata import damaged_plots
    from dataenvgym_dagster.defs.resources import home_warehouse
    from dataenvgym_dagster.defs.turns import failed_partitions
    from dataenvgym_dagster.machinery.locks import disk_is_full, full_disk_message, is_disk_full

    home = default_home()
    dagster_home = prepare_dagster_home(home)
    problems = []
    full = disk_is_full(home)
    if full:
        problems.append(full_disk_message(home))
    if repair:
        for path in repair_version_tables(dagster_home):
            print(f"{path}: repaired (kept Dagster's current schema version only)")
    # On a full disk SQLite cannot even read its files: the space kept for that is given back first.
    if full:
        release_space_reserve(dagster_home)
    try:
        damaged_instance = damaged_instance_files(dagster_home)
        problems += [damage.describe() for damage in damaged_instance]
        if not damaged_instance:
            instance = _instance(home, cause_of_death=f"the disk holding {home} was full" if full else None)
            problems += failed_partitions(instance)
    except Exception as error:
        if not is_disk_full(error):
            raise
        problems.append("the run history cannot be read until some space is freed")
    problems += [damage.describe() for damage in home_warehouse(home).damaged_files()]
    problems += damaged_plots(home)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{home}: the instance, every warehouse file and every plot are readable")
    return 1 if problems else 0


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
    run_parser.add_argument("--wait", action="store_true", help="if the experiment is being run elsewhere, wait for that run, then do what is left")
    commands.add_parser("status", help="what is missing or out of date, per domain and per experiment the catalogue runs")
    doctor_parser = commands.add_parser("doctor", help="find a full disk, damaged instance storage, warehouse files or plots, and runs left in progress by a killed process")
    doctor_parser.add_argument("--repair", action="store_true", help="repair an instance whose schema version table was stamped twice")
    commands.add_parser("instance", help="create $DAGSTER_HOME with its settings and storage (what `make ui` calls) and print it")
    compare_parser = commands.add_parser("compare", help="print the gain_by_policy view (the paper's Table 2) of the warehouse")
    compare_parser.add_argument("--domain", default=None)
    sql_parser = commands.add_parser("sql", help="query the warehouse's tables and views: a read-only shell, or one query")
    add_sql_arguments(sql_parser)
    schema_parser = commands.add_parser("schema", help="print the JSON Schema of an environment's state and plan (for agents)")
    schema_parser.add_argument("environment", choices=["open_ended", "skill_list", "skill_tree"])
    from dataenvgym_dagster.suite_cli import add_commands  # suite, leaderboard

    handlers = add_commands(commands)
    arguments = parser.parse_args(argv)
    import duckdb

    from dataenvgym_dagster.defs.turns import PartitionBusyError
    from dataenvgym_dagster.machinery.locks import full_disk_message, is_disk_full

    try:
        if arguments.command in handlers:
            return handlers[arguments.command](arguments)
        if arguments.command == "compare":
            return compare(arguments.domain)
        if arguments.command == "status":
            return status()
        if arguments.command == "schema":
            return schema(arguments.environment)
        if arguments.command == "doctor":
            return doctor(arguments.repair)
        if arguments.command == "sql":
            return sql_command(arguments)
        if arguments.command == "instance":
            _instance(default_home())  # created now, under the lock, rather than by whichever of the UI's processes comes first
            print(os.environ["DAGSTER_HOME"])
            return 0
        return run(arguments.domain, arguments.experiment, arguments.force, arguments.wait)
    except PartitionBusyError as error:
        print(f"dataenvgym: {error}", file=sys.stderr)
        return 3
    except (KeyError, ValueError, LookupError, HomeError, InstanceStorageError) as error:
        print(f"dataenvgym: {error.args[0] if isinstance(error, KeyError) and error.args else error}", file=sys.stderr)
        return 2
    except duckdb.Error as error:
        if is_disk_full(error):
            print(f"dataenvgym: {full_disk_message(default_home())}", file=sys.stderr)
            return 2
        print(f"dataenvgym: {_explain_query_failure(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if not is_disk_full(error):
            raise
        print(f"dataenvgym: {full_disk_message(default_home())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The cost of automation: one experiment run by the Dagster daemon vs by `dataenvgym run`.

Both start from an empty home. `dataenvgym run` (what `make run` calls) materialises the
foundations and every iteration in one process. The daemon (`dagster-daemon run`, what `make ui`
starts beside the webserver) runs the same experiment with `automation: eager`: its sensor
launches the foundations, then one run of every iteration, each in a fresh process. The figure
is the wall time from start to the last iteration's test evaluation, and the ratio of the two;
the daemon's runs are listed with when each was created, started and ended. The load average
before and after is printed: the figures are only comparable at similar loads.

    python benchmarks/ui_automation.py                    # the micro catalogue of the tests
    python benchmarks/ui_automation.py --catalogue shipped  # the shipped default experiment (minutes)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from dagster import AssetKey, DagsterInstance

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from dataenvgym_dagster.asset_names import iteration_asset_name
from dataenvgym_dagster.experiments.config import DEFAULT_CATALOG
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG
from dataenvgym_dagster_tests.daemon import Daemon, prepare_home


def catalogue(kind: str, automated: bool) -> dict:
    raw = dict(MICRO_CATALOG) if kind == "micro" else yaml.safe_load(DEFAULT_CATALOG.read_text())
    raw = {key: value for key, value in raw.items() if not str(key).startswith("x-")}
    experiment = raw["default_experiment"]
    raw["experiments"] = {experiment: {**raw["experiments"][experiment], "automation": "eager" if automated else "off"}}
    # The default experiment on the first domain (arithmetic) only: other domains' own default
    # experiments are not kept, and `dataenvgym run` runs the first domain.
    domain = next(iter(raw["domains"]))
    raw["domains"] = {domain: raw["domains"][domain]}
    raw.pop("suites", None)  # suites name the other domains and experiments
    return raw


def by_cli(root: Path, kind: str) -> float:
    env = prepare_home(root, catalogue(kind, automated=False))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dataenvgym_dagster", "run"], env=env, cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def by_daemon(root: Path, kind: str, timeout: float) -> float:
    raw = catalogue(kind, automated=True)
    env = prepare_home(root, raw)
    last = AssetKey(iteration_asset_name(raw["iterations"], "test_evaluation"))
    partition = f"{next(iter(raw['domains']))}|{raw['default_experiment']}"
    instance = DagsterInstance.local_temp(env["DAGSTER_HOME"])  # create the storage before the daemon races to
    instance.get_runs(limit=1)
    started = time.perf_counter()
    with Daemon(root, env) as daemon:
        daemon.wait_for(f"{last.to_user_string()} for {partition}", lambda: partition in instance.get_materialized_partitions(last),
                        timeout_s=timeout)
        wall = time.perf_counter() - started
    timeline(instance, time.time() - wall)
    return wall


def timeline(instance: DagsterInstance, origin: float) -> None:
    """When each of the daemon's runs was created (by a sensor tick), started (its process running) and ended,
    in seconds from the daemon's start: what the daemon adds is the gaps."""
    print("run                  created  started    ended   (seconds from the daemon's start)")
    for record in reversed(instance.get_run_records()):
        run = record.dagster_run
        started, ended = (f"{t - origin:7.1f}" if t else "      -" for t in (record.start_time, record.end_time))
        print(f"{run.job_name:20s} {record.create_timestamp.timestamp() - origin:7.1f}  {started}  {ended}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogue", choices=["micro", "shipped"], default="micro")
    parser.add_argument("--timeout", type=float, default=1800)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ui_automation_"))
    load_before = os.getloadavg()
    try:
        cli = by_cli(root / "cli", arguments.catalogue)
        daemon = by_daemon(root / "daemon", arguments.catalogue, arguments.timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"catalogue: {arguments.catalogue} (default experiment, all iterations, from an empty home)")
    print(f"dataenvgym run (make run):           {cli:6.1f} s")
    print(f"daemon + automation: eager (make ui): {daemon:6.1f} s")
    print(f"ratio daemon / run: {daemon / cli:.2f}")
    print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

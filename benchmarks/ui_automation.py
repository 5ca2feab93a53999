"""The cost of automation: one experiment run by the Dagster daemon vs by `dataenvgym run`.

Both start from an empty home. `dataenvgym run` (what `make run` calls) materialises the
foundations and every iteration in one process. The daemon (`dagster-daemon run`, what `make ui`
starts beside the webserver) runs the same experiment with `automation: eager`: its sensor
launches the foundations, then one run per iteration, each in a fresh process. The figure is
the wall time from start to the last iteration's test evaluation, and the ratio of the two.

    python benchmarks/ui_automation.py                    # the micro catalogue of the tests
    python benchmarks/ui_automation.py --catalogue shipped  # the shipped default experiment (minutes)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
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
from dataenvgym_dagster.cli import INSTANCE_SETTINGS
from dataenvgym_dagster.experiments.config import DEFAULT_CATALOG
from dataenvgym_dagster_tests.conftest import MICRO_CATALOG


def catalogue(kind: str, automated: bool) -> dict:
    raw = dict(MICRO_CATALOG) if kind == "micro" else yaml.safe_load(DEFAULT_CATALOG.read_text())
    raw = {key: value for key, value in raw.items() if not str(key).startswith("x-")}
    experiment = raw["default_experiment"]
    raw["experiments"] = {experiment: {**raw["experiments"][experiment], "automation": "eager" if automated else "off"}}
    # The default experiment on the first domain (arithmetic) only: other domains' own default
    # experiments are not kept, and `dataenvgym run` runs the first domain.
    domain = next(iter(raw["domains"]))
    raw["domains"] = {domain: raw["domains"][domain]}
    return raw


def prepare(root: Path, kind: str, automated: bool) -> dict[str, str]:
    root.mkdir(parents=True)
    (root / "experiments.yaml").write_text(yaml.safe_dump(catalogue(kind, automated)))
    (root / "home" / "dagster").mkdir(parents=True)
    (root / "home" / "dagster" / "dagster.yaml").write_text(INSTANCE_SETTINGS + "telemetry:\n  enabled: false\n")
    return {**os.environ, "DATAENVGYM_HOME": str(root / "home"), "DATAENVGYM_EXPERIMENTS": str(root / "experiments.yaml"),
            "DAGSTER_HOME": str(root / "home" / "dagster")}


def by_cli(root: Path, kind: str) -> float:
    env = prepare(root, kind, automated=False)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dataenvgym_dagster", "run"], env=env, cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def by_daemon(root: Path, kind: str, timeout: float) -> float:
    env = prepare(root, kind, automated=True)
    raw = catalogue(kind, automated=True)
    last = AssetKey(iteration_asset_name(raw["iterations"], "test_evaluation"))
    partition = f"{next(iter(raw['domains']))}|{raw['default_experiment']}"
    instance = DagsterInstance.local_temp(env["DAGSTER_HOME"])  # create the storage before the daemon races to
    instance.get_runs(limit=1)
    started = time.perf_counter()
    log = open(root / "daemon.log", "w")  # noqa: SIM115 - closed with the daemon
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPOSITORY / "workspace.yaml")],
        env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        while partition not in instance.get_materialized_partitions(last):
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({daemon.returncode}):\n" + (root / "daemon.log").read_text()[-3000:])
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{last.to_user_string()} for {partition} was not materialised within {timeout:.0f} s")
            time.sleep(1)
        return time.perf_counter() - started
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalogue", choices=["micro", "shipped"], default="micro")
    parser.add_argument("--timeout", type=float, default=1800)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ui_automation_"))
    try:
        cli = by_cli(root / "cli", arguments.catalogue)
        daemon = by_daemon(root / "daemon", arguments.catalogue, arguments.timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"catalogue: {arguments.catalogue} (default experiment, all iterations, from an empty home)")
    print(f"dataenvgym run (make run):           {cli:6.1f} s")
    print(f"daemon + automation: eager (make ui): {daemon:6.1f} s")
    print(f"ratio daemon / run: {daemon / cli:.2f}")


if __name__ == "__main__":
    main()

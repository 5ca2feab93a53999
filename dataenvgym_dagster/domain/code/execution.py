"""What the code domain needs from whatever runs untrusted programs: an interface it owns.

The domain judges; an executor only runs. An executor starts each program in a sandbox of its
own and hands the judge a :class:`ProgramSession`, through which the judge asks for one thing at
a time (load the program, call a function with plain-data arguments, run it as ``__main__``
with some stdin) and gets back a :class:`Reply`: data (stdout text, a plain-data value) or what
went wrong. The judge (:mod:`dataenvgym_dagster.domain.code.judging`) decides the verdict from
those replies alone, outside the program.

The executor the domain uses by default is registered under the entry-point group
``dataenvgym_dagster.code_executors`` (the project's own is the bubblewrap sandbox in
``machinery/sandbox``), so this layer never imports the layer above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

EXECUTOR_GROUP = "dataenvgym_dagster.code_executors"
DEFAULT_EXECUTOR = "sandbox"

Verdict = Literal[
    "passed", "wrong_answer", "runtime_error", "timeout", "memory_exceeded", "killed", "output_limit", "compile_error",
    "exited_before_tests",
]
VERDICTS: tuple[str, ...] = Verdict.__args__

ReplyStatus = Literal[
    "ok",  # the step ran: ``value`` (a call), ``stdout`` and ``exit_status`` (a run as __main__)
    "error",  # the program raised: ``error`` is its exception, as Python prints it
    "compile_error",  # the program is not valid Python
    "not_plain_data",  # a call returned something that is not plain data
    "exited",  # the program ended its own process (sys.exit, os._exit) before answering
    "timeout",  # the step ran past its time; the sandbox is gone
    "memory_exceeded",  # the sandbox's memory limit was hit; the sandbox is gone
    "killed",  # killed by a signal (``error`` names it); the sandbox is gone
    "output_limit",  # more output than the limit
]


class Limits(BaseModel):
    """What one program (all of its processes together) may use. Seconds, mebibytes and kibibytes as named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    test_seconds: float = Field(4.0, gt=0, description="Wall time per test (one call, or one run with one input).")
    wall_seconds: float = Field(30.0, gt=0, description="Hard cap on one program's whole run, start and every test included.")
    memory_mb: int = Field(1024, gt=0, description="Memory of all the program's processes together (a cgroup), tmpfs files included.")
    file_size_mb: int = Field(16, gt=0, description="Largest file it may write (RLIMIT_FSIZE); also the size of its private /tmp.")
    processes: int = Field(32, gt=0, description="Processes and threads it may have at once, all together.")
    output_kb: int = Field(1024, gt=0, description="Stdout kept per test (or size of one returned value); more is output_limit.")


class TestCase(BaseModel):
    """One test: stdin text and expected stdout, or JSON arguments (one per line) and the JSON result."""

    model_config = ConfigDict(frozen=True)
    __test__ = False  # not a pytest class

    input: str
    output: str


class Reply(BaseModel):
    """What came back from the sandbox for one request: data, or what went wrong. Untrusted text, truncated."""

    model_config = ConfigDict(frozen=True)

    status: ReplyStatus
    value: object = None
    stdout: str = ""
    exit_status: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ProgramSession(Protocol):
    """One untrusted program in a sandbox of its own. Every method returns a reply and never raises
    for anything the program does; once the sandbox is gone (``timeout``, ``killed`` ...) every
    later request gets the same reply."""

    def load(self, program: str, module: str) -> Reply:
        """Compile ``program``; unless ``module`` is ``__main__``, also run it as a module of that name."""

    def call(self, function: str, arguments: Sequence[object]) -> Reply:
        """Call the loaded module's ``function`` (or ``Solution().function``) with plain-data arguments."""

    def run_main(self, stdin: str) -> Reply:
        """Run the loaded program as ``__main__`` in a fresh process with ``stdin`` as its input."""


Result = TypeVar("Result")


class ProgramExecutor(Protocol):
    """Runs each program in a sandbox of its own while ``judge`` talks to it; results in order."""

    def judge_many(self, count: int, judge: Callable[[int, ProgramSession], Result]) -> list[Result]:
        """``judge(index, session)`` for ``index`` in ``range(count)``, each with a fresh sandbox,
        several at a time; each sandbox and all of its processes are gone when its judge returns."""


def default_executor(limits: Limits) -> ProgramExecutor:
    """The executor registered as ``sandbox`` in :data:`EXECUTOR_GROUP`, made for ``limits``."""
    found = entry_points(group=EXECUTOR_GROUP, name=DEFAULT_EXECUTOR)
    if not found:
        raise RuntimeError(
            f"no program executor named {DEFAULT_EXECUTOR!r} is registered in the entry-point group {EXECUTOR_GROUP!r}; "
            "reinstall the project (pip install -e .) so that its sandbox is registered"
        )
    factory: Callable[[Limits], ProgramExecutor] = next(iter(found)).load()
    return factory(limits)

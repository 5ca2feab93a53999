"""Running untrusted programs: isolated processes, resource limits, tests and verdicts (no Dagster)."""

from dataenvgym_dagster.machinery.sandbox.sandbox import (
    Failure,
    Isolation,
    Job,
    Limits,
    Outcome,
    Sandbox,
    SandboxUnavailableError,
    TestCase,
    Verdict,
    isolation,
)

__all__ = [
    "Failure", "Isolation", "Job", "Limits", "Outcome", "Sandbox", "SandboxUnavailableError", "TestCase", "Verdict", "isolation",
]

"""Running untrusted programs: a bubblewrap sandbox and a cgroup per program, limits, no verdicts (no Dagster).

The code domain judges (:mod:`dataenvgym_dagster.domain.code.judging`); this package only runs
programs and sends back what they produced, through the domain's
:class:`~dataenvgym_dagster.domain.code.execution.ProgramExecutor` interface.
"""

from dataenvgym_dagster.machinery.sandbox.sandbox import (
    Isolation,
    Sandbox,
    SandboxSession,
    SandboxUnavailableError,
    isolation,
)

__all__ = ["Isolation", "Sandbox", "SandboxSession", "SandboxUnavailableError", "isolation"]

"""A failed run said in one line: what went wrong and what to do; the full trace stays in the run's log.

Dagster records each failed step with its whole error chain (in the run's event log, shown by
the UI). The terminal gets one line: the step, and the innermost error of the chain, which is the
project's own error (they name the thing, the value and the fix) or, for a full disk, which disk
and how much space is left.
"""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterEventType, ExecuteInProcessResult
from dagster._utils.error import SerializableErrorInfo

from dataenvgym_dagster.machinery.locks import full_disk_message

_FULL_DISK = ("[errno 28]", "no space left on device", "database or disk is full", "[errno 122]")


def _chain(error: SerializableErrorInfo | None) -> list[SerializableErrorInfo]:
    chain = []
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = error.cause or error.context
    return chain


def root_cause(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The innermost error of the chain: what the step's code raised, not Dagster's wrappers around it."""
    return _chain(error)[-1]


def describe_error(error: SerializableErrorInfo, home: Path) -> str:
    """One line for an error chain: a full disk by its disk and free space, else the innermost error's first line."""
    chain = _chain(error)
    if any(marker in e.message.lower() for e in chain for marker in _FULL_DISK):
        return full_disk_message(home)
    root = chain[-1]
    message = root.message.strip().splitlines()[0] if root.message.strip() else root.cls_name or "unknown error"
    name = root.cls_name or ""
    return message if name and message.startswith(name) else f"{name}: {message}" if name else message


def explain_failure(result: ExecuteInProcessResult, home: Path) -> str:
    """One line for a failed in-process run: its first failed step (or the run) and why, and where the trace is."""
    where = f"full trace: run {result.run_id} in the Dagster UI (dagster dev -w workspace.yaml)"
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data.error is not None:
            return f"{event.step_key} failed: {describe_error(event.step_failure_data.error, home)} ({where})"
    for event in result.all_events:
        data = event.event_specific_data
        if event.event_type == DagsterEventType.RUN_FAILURE and getattr(data, "error", None) is not None:
            return f"{result.job_def.name} failed: {describe_error(data.error, home)} ({where})"
    return f"{result.job_def.name} failed ({where})"

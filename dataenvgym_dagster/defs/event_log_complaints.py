"""Dagster's complaints that a log line could not be written to its event log, held back from the terminal.

When the disk fills up mid-run, Dagster's event-log handler writes ``Exception while writing logger
call to event log: …`` straight to ``sys.stderr`` (``dagster/_core/instance/types.py``) before the run
fails, so the terminal showed them above the one line that says the disk is full. They are held
while a run executes: on a full disk they go into the run's failure record (written with the space
kept for it) and the terminal shows only the one line; otherwise they are written out when the run ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

PREFIX = "Exception while writing logger call to event log"


class _HoldingStream:
    """``stream``, except that Dagster's event-log complaints (one ``write`` each) are kept in ``held``."""

    def __init__(self, stream: TextIO, held: list[str]) -> None:
        self._stream, self._held = stream, held

    def write(self, text: str) -> int:
        if text.startswith(PREFIX):
            self._held.append(text.rstrip("\n"))
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str):  # flush, fileno, isatty, encoding, …: the real stream's
        return getattr(self._stream, name)


@contextmanager
def held_event_log_complaints() -> Iterator[list[str]]:
    """Hold Dagster's event-log complaints while the block runs; yields the list they are kept in.

    The caller decides what becomes of them (e.g. a full disk's failure record); any still in the
    list when the block ends are written to the real ``sys.stderr`` then, so none is lost."""
    held: list[str] = []
    real = sys.stderr
    sys.stderr = _HoldingStream(real, held)
    try:
        yield held
    finally:
        sys.stderr = real
        for line in held:
            print(line, file=real)

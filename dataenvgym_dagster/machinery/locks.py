"""Inter-process locks on files, and what a full disk looks like.

A lock is an advisory ``flock`` on a small file: the kernel releases it when its holder exits,
however it exits (SIGKILL and out-of-memory included), so a crashed process never leaves a stale
lock behind. The holder writes who it is into the file, so a process that finds the lock taken
can say by whom.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: a process, since when (epoch seconds), doing what."""

    pid: int
    since: float
    doing: str

    def describe(self) -> str:
        return f"{self.doing} (pid {self.pid}, since {time.strftime('%H:%M:%S', time.localtime(self.since))})"


def _read_holder(path: Path) -> Holder | None:
    try:
        pid, since, doing = path.read_text().split("\n", 2)
        return Holder(int(pid), float(since), doing.strip())
    except (OSError, ValueError):
        return None


class LockBusy(Exception):
    """The lock is held by another process (``holder``, if it said who it is)."""

    def __init__(self, path: Path, holder: Holder | None) -> None:
        super().__init__(f"{path} is held by {holder.describe() if holder else 'another process'}")
        self.path, self.holder = path, holder


@contextmanager
def file_lock(path: Path, doing: str, wait: bool = True, on_wait=None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    ``wait=False`` raises :class:`LockBusy` at once if another process holds it; otherwise this
    blocks until it is free, calling ``on_wait(holder)`` once first if it has to wait. ``doing``
    says what the holder does, for whoever finds the lock taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            if not wait:
                raise LockBusy(path, holder) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:  # best effort: on a full disk the lock still works, only the holder's name is missing
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n{time.time()}\n{doing}\n".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(descriptor)  # releases the lock


# -- full disks ----------------------------------------------------------------------------------
_FULL_DISK_MARKERS = ("database or disk is full", "disk i/o error", "no space left on device")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or one it was raised from, is a write that failed for lack of space."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.Error) or type(current).__module__.startswith(("sqlalchemy", "duckdb")):
            if any(marker in str(current).lower() for marker in _FULL_DISK_MARKERS):
                return True
        current = current.__cause__ or current.__context__
    return False


def free_space(path: Path) -> tuple[int, int]:
    """(free, total) bytes of the file system holding ``path`` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.free, usage.total


FULL_BELOW_BYTES = 2 * 1024 * 1024


def disk_is_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has less than 2 MiB free (a write of any size may fail)."""
    return free_space(path)[0] < FULL_BELOW_BYTES


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def full_disk_message(path: Path) -> str:
    """One line: the file system holding ``path`` is full, how full, and what to do."""
    free, total = free_space(path)
    return (
        f"no space left on the disk holding {path} ({human_bytes(free)} free of {human_bytes(total)}); "
        "free some space (or point DATAENVGYM_HOME at a larger disk) and re-run: finished assets are kept"
    )

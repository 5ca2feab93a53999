"""A home's Dagster instance: its settings, created once whoever comes first, and named when damaged.

``$DAGSTER_HOME`` (default ``<home>/dagster``) holds the instance: ``dagster.yaml`` and, with the
default local storage, SQLite files for runs, their events and schedules. Dagster creates those
files (and stamps their schema version) the first time a process opens the instance; two
processes doing so at the same moment (two first ``dataenvgym run``, or the CLI beside
``dagster dev``) used to stamp the version table twice, which broke the home for good. So every
process of this project opens the instance under one lock, and the first creates the files.

The settings also make the run queue start one run per partition at a time: runs launched from
the UI, the automation sensor or a schedule wait in the queue while another run of the same
partition (a domain's foundations, or one ``domain|experiment``) is in progress, whoever started
it. ``dataenvgym run`` takes the same turn (see :mod:`dataenvgym_dagster.defs.turns`).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dataenvgym_dagster.defs.resources import HOME_ENV_VAR
from dataenvgym_dagster.machinery.locks import FULL_BELOW_BYTES, file_lock, free_space, full_disk_message, is_disk_full
from dataenvgym_dagster.machinery.storage import replace_file

PARTITION_TAG = "dagster/partition"  # Dagster's run tag naming a run's partition

# The instance settings `dataenvgym` and `make ui` write into an empty or missing dagster.yaml:
# default local storage, plus run monitoring, so that runs that never start, or never finish
# cancelling, end as failed instead of hanging in the UI (the daemon of `dg dev`, which `make ui` starts, applies it).
# Runs whose process was killed are marked failed by `fail_abandoned_runs` (CLI start, sensor tick).
# The run queue (Dagster's default run coordinator) starts at most one run per partition at a time,
# and looks at its queue every second rather than every 5 s (a launch waited 2.5 s on average).
# Run retries: the daemon re-executes, from the failed step on, a run whose process died (its run
# worker killed with the daemon's process group, out of memory), but only runs tagged with
# dagster/max_retries (those the sensors launch, defs/automation.py) and never a run in which an
# asset failed: that failure needs a fix, and retrying it would only pay for it twice.
RUN_RETRY_SETTINGS = """\
run_retries:
  enabled: true
  max_retries: 0
  retry_on_asset_or_op_failure: false
"""
_SETTINGS_BEFORE_RETRIES = f"""\
# Written by dataenvgym (see defs/instance.py). Edit freely: an edited file is never overwritten.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  poll_interval_seconds: 30
run_queue:
  dequeue_interval_seconds: 1
concurrency:
  runs:
    tag_concurrency_limits:
      - key: {PARTITION_TAG}
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""
INSTANCE_SETTINGS = _SETTINGS_BEFORE_RETRIES + RUN_RETRY_SETTINGS
# What earlier versions wrote: such a file, unedited, is brought up to date.
PREVIOUS_SETTINGS = (
    _SETTINGS_BEFORE_RETRIES,
    "# Written by dataenvgym (see cli.py). Edit freely: a non-empty file is never overwritten.\n"
    "run_monitoring:\n  enabled: true\n  start_timeout_seconds: 180\n  cancel_timeout_seconds: 180\n  poll_interval_seconds: 30\n",
)
LOCK_FILE = ".instance.lock"


class HomeError(OSError):
    """``$DATAENVGYM_HOME`` (or ``$DAGSTER_HOME``) is not a usable folder."""


class InstanceStorageError(RuntimeError):
    """The instance's storage files cannot be opened; the message names the file and the fix."""


def prepare_dagster_home(home: Path) -> Path:
    """``$DAGSTER_HOME`` (default ``<home>/dagster``), created, with instance settings if it had none
    (or an unedited older version of ours)."""
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    variable = "DAGSTER_HOME" if dagster_home != home / "dagster" else HOME_ENV_VAR
    try:
        home.mkdir(parents=True, exist_ok=True)
        dagster_home.mkdir(parents=True, exist_ok=True)
        settings = dagster_home / "dagster.yaml"
        current = settings.read_text() if settings.exists() else ""
        if not current.strip() or current in PREVIOUS_SETTINGS:
            replace_file(settings, INSTANCE_SETTINGS.encode())
    except OSError as error:
        if is_disk_full(error):
            raise
        value = os.environ.get(variable, str(home))
        raise HomeError(
            f"{variable}={value} is not a usable folder ({error.strerror}: {error.filename}); "
            f"set {variable} to a writable directory, e.g. export {variable}=$HOME/dataenvgym"
        ) from None
    return dagster_home


def open_instance(home: Path):
    """The persistent Dagster instance of ``home``, its storage created by the first process to get here.

    Raises :class:`InstanceStorageError` naming the damaged file and the fix if its storage is damaged."""
    dagster_home = prepare_dagster_home(home)
    from dagster import DagsterInstance

    with file_lock(dagster_home / LOCK_FILE, "opening the Dagster instance"):
        keep_space_reserve(dagster_home)
        try:
            instance = DagsterInstance.get()
            # Every storage creates its files (and stamps their schema) on first use: do it under the lock.
            instance.get_runs(limit=1)
            instance.get_dynamic_partitions("experiments")
            instance.all_instigator_state()
        except Exception as error:
            if is_disk_full(error):
                raise OSError(28, full_disk_message(dagster_home)) from error
            problems = damaged_instance_files(dagster_home)
            if problems:
                raise InstanceStorageError("; ".join(p.describe() for p in problems)) from error
            raise
    return instance


# -- a full disk ---------------------------------------------------------------------------------
# A few MiB kept beside the instance's storage, given back when the disk fills up so that the run
# that died of it can still be marked failed with that cause (SQLite needs room to record anything).
RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 1024 * 1024


def keep_space_reserve(dagster_home: Path) -> None:
    """Write the reserve if it is missing and the disk has room to spare; nothing otherwise."""
    reserve = dagster_home / RESERVE_FILE
    try:
        if not reserve.exists() and free_space(dagster_home)[0] > 2 * RESERVE_BYTES:
            replace_file(reserve, bytes(RESERVE_BYTES))
    except OSError:
        pass


def release_space_reserve(dagster_home: Path) -> bool:
    """Delete the reserve, freeing its space for the records of a failure; whether there was one."""
    try:
        (dagster_home / RESERVE_FILE).unlink()
        return True
    except FileNotFoundError:
        return False


# -- damaged instance storage --------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceDamage:
    file: Path
    problem: str
    fix: str

    def describe(self) -> str:
        return f"{self.file}: {self.problem}; {self.fix}"


def _sqlite_files(dagster_home: Path) -> list[Path]:
    """The SQLite files of the default local storage (runs, event index, schedules)."""
    candidates = [dagster_home / "history" / "runs.db", dagster_home / "history" / "runs" / "index.db",
                  dagster_home / "schedules" / "schedules.db"]
    return [path for path in candidates if path.exists()]


def _alembic_heads() -> set[str]:
    """The schema versions Dagster's migrations end in (what a healthy version table holds)."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    return set(ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).get_heads())


def damaged_instance_files(dagster_home: Path) -> list[InstanceDamage]:
    """Each SQLite file of the instance that Dagster cannot open, with what is wrong and how to recover."""
    damage = []
    aside = f"or move {dagster_home} aside (mv {dagster_home} {dagster_home}.damaged) to start a new run history; assets on disk are kept"
    for path in _sqlite_files(dagster_home):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    damage.append(InstanceDamage(path, "the SQLite file is corrupt (PRAGMA quick_check fails)", f"restore it from a backup, {aside}"))
                    continue
                tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                versions = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")] if "alembic_version" in tables else []
        except sqlite3.DatabaseError as error:
            if is_disk_full(error) or free_space(path)[0] < FULL_BELOW_BYTES:
                raise OSError(28, full_disk_message(path)) from error  # not damage: SQLite needs room to read
            damage.append(InstanceDamage(path, f"not a readable SQLite file ({error})", f"restore it from a backup, {aside}"))
            continue
        if len(versions) > 1:
            heads = _alembic_heads()
            keep = sorted(set(versions) & heads)
            fix = (
                f"run `dataenvgym doctor --repair` to keep only {keep[0]} (the tables are complete)" if len(keep) == 1 else aside
            )
            damage.append(InstanceDamage(
                path, f"its schema version table lists {len(versions)} versions ({', '.join(versions)}), "
                "left by two processes that created the instance at once", fix,
            ))
    return damage


def repair_version_tables(dagster_home: Path) -> list[Path]:
    """Keep only Dagster's current schema version in each version table that lists several and
    includes it (what two processes creating the storage at once leave); the files repaired."""
    heads, repaired = _alembic_heads(), []
    for path in _sqlite_files(dagster_home):
        with sqlite3.connect(path) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "alembic_version" not in tables:
                continue
            versions = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
            keep = versions & heads
            if len(versions) > 1 and len(keep) == 1:
                connection.execute("DELETE FROM alembic_version WHERE version_num <> ?", [keep.pop()])
                repaired.append(path)
    return repaired

"""A live Dagster daemon over a fresh home, for drills and the automation benchmark.

``Daemon`` runs ``dagster-daemon run -w workspace.yaml`` (what ``make ui`` starts beside the
webserver, and production runs alone) in its own process group, with the home, the catalogue and
``$DAGSTER_HOME`` of one folder. It can be killed and started again over the same home.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from dataenvgym_dagster.defs.instance import INSTANCE_SETTINGS

REPOSITORY = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def prepare_home(root: Path, catalogue: dict) -> dict[str, str]:
    """``root/experiments.yaml`` and an instance under ``root/home/dagster``; the environment every process shares."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiments.yaml").write_text(yaml.safe_dump(catalogue))
    (root / "home" / "dagster").mkdir(parents=True, exist_ok=True)
    (root / "home" / "dagster" / "dagster.yaml").write_text(INSTANCE_SETTINGS + "telemetry:\n  enabled: false\n")
    return {**os.environ, "DATAENVGYM_HOME": str(root / "home"), "DATAENVGYM_EXPERIMENTS": str(root / "experiments.yaml"),
            "DAGSTER_HOME": str(root / "home" / "dagster")}


@dataclass
class Daemon:
    """``dagster-daemon run`` over ``root`` (see :func:`prepare_home`); its log is ``root/daemon-<n>.log``."""

    root: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # every start's process group: a killed daemon's run workers live on

    def start(self) -> Daemon:
        self.starts += 1
        log_path = self.root / f"daemon-{self.starts}.log"
        self.logs.append(log_path)
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPOSITORY / "workspace.yaml")],
                env=self.env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.groups.append(self.process.pid)
        return self

    def log(self) -> str:
        return "".join(path.read_text() for path in self.logs if path.exists())

    def kill(self, sig: signal.Signals = signal.SIGKILL, group: bool = False) -> None:
        """Send ``sig`` to the daemon process alone (its code server and run workers live on), or to its whole group."""
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        """Stop the daemon and everything every start of it started (code servers, run workers)."""
        self._signal_groups(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self._signal_groups(signal.SIGKILL)  # whatever did not stop (a run worker mid-step)
        if self.process is not None:
            self.process.wait(timeout=30)
        self.groups.clear()
        self.process = None

    def _signal_groups(self, sig: signal.Signals) -> None:
        for group in self.groups:
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                pass

    def wait_for(self, what: str, check: Callable[[], T | None], timeout_s: float = 600, poll_s: float = 0.2) -> T:
        """Poll ``check`` until it returns something truthy; fails naming ``what`` (and the daemon's log) on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.process.returncode}) waiting for {what}:\n{self.log()[-3000:]}")
            time.sleep(poll_s)
        raise TimeoutError(f"no {what} within {timeout_s:.0f} s; the daemon's log:\n{self.log()[-3000:]}")

    def __enter__(self) -> Daemon:  # noqa: PYI034 (a dataclass, not subclassed)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

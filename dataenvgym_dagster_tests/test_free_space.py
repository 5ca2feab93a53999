"""``tools/free_space.py``, as the Makefile runs it before building an environment: a disk that
cannot hold the install is refused in one line that names the disk and the space; an
environment that exists already (an update) is never refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "free_space.py"


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=60)


def test_a_fresh_environment_the_disk_cannot_hold_is_refused_in_one_line(tmp_path):
    free_gib = shutil.disk_usage(tmp_path).free / 2**30
    need = f"{free_gib * 4 + 1:.0f}"  # more than this disk has
    result = run("--need-gib", need, "--for", "make install (.venv)", str(tmp_path / "new" / ".venv"))
    assert result.returncode == 1 and result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message
    assert message.startswith(f"make install (.venv) needs about {need} GiB free on the disk holding {tmp_path}; ")
    assert "GiB are free. Free some space" in message


def test_enough_space_or_a_finished_environment_passes_and_a_half_built_one_is_checked_again(tmp_path):
    assert run("--need-gib", "0.001", "--for", "x", str(tmp_path / ".venv")).returncode == 0
    (tmp_path / ".venv").mkdir()  # left by an install that ran out of space: checked again
    assert run("--need-gib", "1e9", "--for", "x", str(tmp_path / ".venv")).returncode == 1
    (tmp_path / ".venv" / ".installed").touch()  # the Makefile's marker: an update, never refused
    assert run("--need-gib", "1e9", "--for", "x", str(tmp_path / ".venv")).returncode == 0


def test_pip_temporary_folder_on_another_disk_needs_only_its_own_share(tmp_path):
    import os

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        import pytest

        pytest.skip("needs /dev/shm on another disk than the test's folder")
    shm_free = shutil.disk_usage(shm).free / 2**30
    env = {**os.environ, "TMPDIR": str(shm)}
    target = str(tmp_path / ".venv")
    small = subprocess.run([sys.executable, str(SCRIPT), "--need-gib", "0.001", "--temporary-gib", "0.001", "--for", "x", target],
                           capture_output=True, text=True, env=env, timeout=60)
    assert small.returncode == 0, small.stderr
    big = subprocess.run([sys.executable, str(SCRIPT), "--need-gib", "0.001", "--temporary-gib", f"{shm_free * 4 + 1:.0f}",
                          "--for", "x", target], capture_output=True, text=True, env=env, timeout=60)
    assert big.returncode == 1 and f"on the disk holding {shm};" in big.stderr

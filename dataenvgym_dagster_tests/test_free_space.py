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


def test_enough_space_or_an_existing_environment_passes(tmp_path):
    assert run("--need-gib", "0.001", "--for", "x", str(tmp_path / ".venv")).returncode == 0
    (tmp_path / ".venv").mkdir()
    assert run("--need-gib", "1e9", "--for", "x", str(tmp_path / ".venv")).returncode == 0

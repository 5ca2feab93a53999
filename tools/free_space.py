"""Refuse a fresh install that the disk cannot hold, in one line, before pip fails half-way.

pip reports a full disk as ``OSError: [Errno 28] No space left on device`` somewhere in the
middle of unpacking torch, with a half-built environment left behind. The Makefile calls this
first (standard library only: nothing is installed yet):

    python3 tools/free_space.py --need-gib 4 --for "make install" .venv

It checks the disk that will hold the environment (for the whole ``--need-gib``, pip's temporary
files included when they are on the same disk) and, when pip's temporary folder is on another disk,
that one for ``--temporary-gib`` (the downloaded and unpacked wheels). An environment whose install
finished (``<target>/.installed`` exists) is being updated, not built: nothing is checked then; one
left half-built by an earlier failure is checked again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing parent: where a folder about to be made will live."""
    path = path.absolute()
    return next(candidate for candidate in (path, *path.parents) if candidate.exists())


def shortfall(target: Path, need_gib: float, temporary_gib: float) -> str | None:
    """What is missing, or None when the environment's disk has ``need_gib`` free and pip's temporary
    folder, if it is on another disk, ``temporary_gib``."""
    home, temporary = nearest_existing(target), Path(tempfile.gettempdir())
    needs = {home: need_gib}
    if temporary.stat().st_dev != home.stat().st_dev:
        needs[temporary] = temporary_gib
    for where, gib in needs.items():
        free_gib = shutil.disk_usage(where).free / 2**30
        if free_gib < gib:
            return f"needs about {gib:g} GiB free on the disk holding {where}; {free_gib:.1f} GiB are free"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--need-gib", type=float, required=True, help="space the install takes, pip's temporary files included")
    parser.add_argument("--for", dest="purpose", required=True, help="what is being installed, for the message")
    parser.add_argument("--temporary-gib", type=float, default=1.5, help="space pip's temporary files take on another disk")
    parser.add_argument("target", type=Path, help="the environment's folder")
    arguments = parser.parse_args()
    if (arguments.target / ".installed").exists():
        return 0
    missing = shortfall(arguments.target, arguments.need_gib, arguments.temporary_gib)
    if missing is None:
        return 0
    print(
        f"{arguments.purpose} {missing}. Free some space (or set TMPDIR to a larger disk for pip's temporary files) "
        "and run it again.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

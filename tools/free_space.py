"""Refuse a fresh install that the disk cannot hold, in one line, before pip fails half-way.

pip reports a full disk as ``OSError: [Errno 28] No space left on device`` somewhere in the
middle of unpacking torch, with a half-built environment left behind. The Makefile calls this
first (standard library only: nothing is installed yet):

    python3 tools/free_space.py --need-gib 4 --for "make install" .venv

It checks the disk that will hold the environment and the one holding pip's temporary files.
An environment that already exists is being updated, not built: nothing is checked then.
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


def shortfall(target: Path, need_gib: float) -> str | None:
    """What is missing, or None when every disk involved has ``need_gib`` free."""
    for where in dict.fromkeys([nearest_existing(target), Path(tempfile.gettempdir())]):
        free_gib = shutil.disk_usage(where).free / 2**30
        if free_gib < need_gib:
            return f"needs about {need_gib:g} GiB free on the disk holding {where}; {free_gib:.1f} GiB are free"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--need-gib", type=float, required=True, help="space the install takes, pip's temporary files included")
    parser.add_argument("--for", dest="purpose", required=True, help="what is being installed, for the message")
    parser.add_argument("target", type=Path, help="the environment's folder")
    arguments = parser.parse_args()
    if arguments.target.exists():
        return 0
    missing = shortfall(arguments.target, arguments.need_gib)
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

"""Keeping the garbage collector's full collections short in a process that has imported large libraries.

Dagster, polars, torch and transformers leave about a million objects (modules, classes,
functions) that live as long as the process. Python's cyclic collector walks all of them at
every full collection, about 0.3 s each on this project's 2-core machine, and building the
training features of an iteration triggered two: 2.7 s of the default experiment went there
(``benchmarks/stage_timings.py``). :func:`gc.freeze` moves the objects alive now into a
permanent generation that collections skip; they are still freed when nothing refers to them,
only cycles among them are never collected. So it is done at two moments of a process, after
the code location is built and after a student backend's libraries are imported, each once.
"""

from __future__ import annotations

import gc

_frozen: set[str] = set()


def freeze_long_lived(moment: str) -> None:
    """``gc.freeze()`` the first time this process reaches ``moment`` (a name); later calls do nothing."""
    if moment in _frozen:
        return
    _frozen.add(moment)
    gc.freeze()

"""Keeping the garbage collector's work small in a process that has imported large libraries.

Dagster, polars, torch and transformers leave about a million objects (modules, classes,
functions) that live as long as the process. Python's cyclic collector walks all of them at
every full collection, about 0.3 s each on this project's 2-core machine, and building the
training features of an iteration triggered two: 2.7 s of the default experiment went there
(``benchmarks/stage_timings.py``). :func:`gc.freeze` moves the objects alive now into a
permanent generation that collections skip; they are still freed when nothing refers to them,
only cycles among them are never collected. So it is done at two moments of a process, after
the code location is built and after a student backend's libraries are imported, each once.

The steps also build rows by the ten thousand (problems, texts, token ids), most of which live
until the step ends; with Python's default of a young collection every 700 allocations, each
of them was walked again and again. A young collection every 20 000 allocations cut the
collector's time in the default experiment from 0.89 s to 0.36 s, for a few megabytes more at
most between collections.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_EVERY = 20_000  # allocations (Python's default: 700)
_frozen: set[str] = set()


def freeze_long_lived(moment: str) -> None:
    """``gc.freeze()`` the first time this process reaches ``moment`` (a name); later calls do nothing.

    The first call also makes young collections rarer (:data:`YOUNG_COLLECTION_EVERY`)."""
    if moment in _frozen:
        return
    _frozen.add(moment)
    gc.freeze()
    young, middle, oldest = gc.get_threshold()
    gc.set_threshold(max(YOUNG_COLLECTION_EVERY, young), middle, oldest)

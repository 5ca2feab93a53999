"""The benchmarks' shared clock: the median of repeated runs of a piece of work."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(work: Callable[[], object], repeats: int, warm_up: bool = False) -> float:
    """Median wall time of ``work`` over ``repeats`` runs, in milliseconds; ``warm_up`` runs it once first, untimed."""
    if warm_up:
        work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)

"""Shared by the benchmarks: the best wall time of a few runs (the least disturbed by other work)."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_time(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(fastest of `repeats` calls in seconds, the last call's result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result

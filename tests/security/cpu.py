"""CPU time of a piece of work, for the tests that compare a small and a large input's cost in the same run."""

from __future__ import annotations

import gc
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def least_cpu(work: Callable[[], T], passes: int = 3) -> tuple[float, T]:
    """The least CPU time of this thread over `passes` runs of `work`, and what its last run returned. This thread's
    time, not the process's: in the full suite, threads other tests left running (clients, executors) ran beside the
    work and counted in `process_time` (a CI run measured 26.6 times for 8 times the input of a parser that scales
    linearly alone). The collector off during each run: it walks what every earlier test left on the heap."""
    times: list[float] = []
    result: T
    for _ in range(passes):
        gc.collect()
        gc.disable()
        try:
            started = time.thread_time()
            result = work()
            times.append(time.thread_time() - started)
        finally:
            gc.enable()
    return min(times), result

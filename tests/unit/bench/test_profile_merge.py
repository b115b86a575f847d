"""bench.profile_merge's account of the garbage collector (what pass 1 reports as the collector's part)."""

from __future__ import annotations

import gc

from bench.profile_merge import CollectorTime


def test_collector_time_counts_each_collection_by_generation_and_its_cpu() -> None:
    watch = CollectorTime()
    gc.callbacks.append(watch)
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        gc.callbacks.remove(watch)
    assert watch.runs[0] >= 1 and watch.runs[2] >= 2  # other collections may run meanwhile, never fewer
    assert watch.cpu >= 0.0


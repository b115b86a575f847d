"""The CPU the merge stage spends on each event it takes in, whatever the version it joins: `decode_event` (the
message's bytes to a validated event, or a Rejection) and `Copy.of` (the event's canonical JSON and fingerprint),
over the bench workload's messages, with the worker's garbage-collector settings. No Kafka, no merge.

    python -m bench.per_event [--shipments N --events-per-shipment K] [--repeat R]

Prints, per call, the fastest and the median of R passes, in µs of CPU (process_time) per event.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Callable, Sequence, TypeVar

from bench.workload import DEFAULT_EVENTS_PER_SHIPMENT, DEFAULT_SHIPMENTS, generate
from streams.codec import Rejection, decode_event
from streams.copies import Copy
from worker.app import GC_THRESHOLDS

T = TypeVar("T")


def cpu_per_item(call: Callable[[T], object], items: Sequence[T]) -> float:
    """µs of CPU per item of one pass of `call` over `items`."""
    start = time.process_time()
    for item in items:
        call(item)
    return (time.process_time() - start) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipments", type=int, default=DEFAULT_SHIPMENTS)
    parser.add_argument("--events-per-shipment", type=int, default=DEFAULT_EVENTS_PER_SHIPMENT)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    lines = generate(args.shipments, args.events_per_shipment).lines
    decoded = [decode_event(line) for line in lines]
    events = [event for event in decoded if not isinstance(event, Rejection)]
    if len(events) != len(lines):
        raise SystemExit("the workload holds events the codec refuses")
    gc.freeze()  # as worker.app.run_worker does
    gc.set_threshold(*GC_THRESHOLDS)
    passes: dict[str, list[float]] = {"decode_event": [], "Copy.of": []}
    for _ in range(args.repeat):  # alternated, so both see the same load
        passes["decode_event"].append(cpu_per_item(decode_event, lines))
        passes["Copy.of"].append(cpu_per_item(Copy.of, events))
    print(f"[per_event] {len(lines)} events ({sum(map(len, lines)) / len(lines):.0f} B avg), {args.repeat} passes")
    for name, figures in passes.items():
        print(f"    {name:<14} best {min(figures):6.2f} us/event, median {statistics.median(figures):6.2f}")


if __name__ == "__main__":
    main()

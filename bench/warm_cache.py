"""What the worker's warm-state cache saves on the pure merge path: µs per event with and without it.

Replays an interleaved workload one event per version (the worker's worst case) through the worker's merge stage
(worker.stages.MergeHandler) without Kafka, once with no warm cache (every version decodes and re-projects the stored
state) and once with it (the state and record the previous version left). Both passes run in this process, in turn.

    .venv/bin/python -m bench.warm_cache [--shipments 300] [--events-per-shipment 15] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time

from bench.workload import AUTHORITY, Workload, generate
from hubconf.settings import DEFAULT_WARM_STATES
from hubconf.topics import Topics
from runtime.api import MemoryStore, Record
from streams.horizon import Horizon
from worker.stages import DEADLINES, SHIPMENTS, Counters, DeadLetters, MergeHandler, WarmStates

TOPICS = Topics("warm-cache")


def replay(workload: Workload, warm: bool) -> float:
    """µs of wall time per event for the whole replay, one handler call (one version) per event."""
    counters = Counters()
    cache = WarmStates(DEFAULT_WARM_STATES if warm else 0)
    merge = MergeHandler(TOPICS, AUTHORITY, Horizon(), DeadLetters(TOPICS.dlq, counters), counters, False, cache)
    stores = {SHIPMENTS: MemoryStore(), DEADLINES: MemoryStore()}
    received_ms = int(time.time() * 1000)
    records = [
        Record(TOPICS.events, 0, offset, key, value, (), received_ms)
        for offset, (key, value) in enumerate(zip(workload.keys, workload.lines))
    ]
    started = time.perf_counter()
    for record in records:
        merge([record], stores)
    elapsed = time.perf_counter() - started
    if counters.dead_lettered or counters.versions_emitted != len(records):
        raise SystemExit(f"expected one version per event; the merge refused {dict(counters.by_reason)}")
    return elapsed / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipments", type=int, default=300)
    parser.add_argument("--events-per-shipment", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    workload = generate(shipments=args.shipments, events_per_shipment=args.events_per_shipment)
    print(f"{workload.events} events, {args.shipments} shipments, interleaved, one event per version")
    print(f"{'run':>4}  {'no cache µs/event':>18}  {'cache µs/event':>15}  {'ratio':>6}")
    for run in range(1, args.repeat + 1):
        cold, hot = replay(workload, warm=False), replay(workload, warm=True)
        print(f"{run:>4}  {cold:>18.0f}  {hot:>15.0f}  {hot / cold:>6.2f}")


if __name__ == "__main__":
    main()

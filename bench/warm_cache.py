"""What the worker's warm-state cache saves on the pure merge path: µs per event with and without it.

Replays an interleaved workload one event per version (the worker's worst case) through the merge path of
`worker/app.py` without Kafka, once re-decoding and re-projecting the stored state every time (no cache) and
once reusing the state and record the previous version left (cache). Both passes run in this process, in turn.

    .venv/bin/python -m bench.warm_cache [--shipments 300] [--events-per-shipment 15] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time

from bench.workload import AUTHORITY, generate
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event, decode_state, encode_state, encode_status
from streams.merge import ShipmentState, absorb, project


def replay(events: list[HubEvent], warm: bool) -> float:
    """µs of wall time per event for the whole replay."""
    table: dict[str, bytes] = {}
    cache: dict[str, tuple[ShipmentState, ShipmentRecord]] = {}
    started = time.perf_counter()
    for event in events:
        shipment_id = event.shipment_id
        assert shipment_id is not None
        stored = table.get(shipment_id)
        previous: ShipmentRecord | None
        if warm and shipment_id in cache:
            before, previous = cache[shipment_id]
        else:
            before = decode_state(stored) if stored else ShipmentState(shipment_id)
            previous = project(before, AUTHORITY) if stored else None
        state, new = absorb(before, [event])
        record = project(state, AUTHORITY)
        table[shipment_id] = encode_state(state)
        cache[shipment_id] = (state, record)
        encode_status(record, new)
        del previous  # the worker diffs settlement and claims against it; its cost is in building it
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipments", type=int, default=300)
    parser.add_argument("--events-per-shipment", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    workload = generate(shipments=args.shipments, events_per_shipment=args.events_per_shipment)
    events = [e for e in map(decode_event, workload.lines) if not isinstance(e, Rejection)]
    print(f"{len(events)} events, {args.shipments} shipments, interleaved, one event per version")
    print(f"{'run':>4}  {'no cache µs/event':>18}  {'cache µs/event':>15}  {'ratio':>6}")
    for run in range(1, args.repeat + 1):
        cold, hot = replay(events, warm=False), replay(events, warm=True)
        print(f"{run:>4}  {cold:>18.0f}  {hot:>15.0f}  {hot / cold:>6.2f}")


if __name__ == "__main__":
    main()

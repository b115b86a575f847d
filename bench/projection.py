"""CPU per event of the merge's hot path, project plus encode, at the bench's shape, without Kafka.

    python -m bench.projection [--full] [--shipments N --events-per-shipment K] [--template JSONL] [--profile]

Replays the workload (bench/workload.py) in publish-order batches of MMHUB_BATCH_MAX messages, as the worker
sees them, with every shipment's state and record kept warm between versions (no decode of stored state: a warm
shipment is never decoded). Per version it times, in CPU seconds of this thread: the record of the new state
(`streams.projection.advance` from the previous record, or with `--full` a `streams.merge.project` from
scratch), `encode_state` (what the version stores: `streams.step.stored_values`, the state whole while it is
small) and `encode_status`; and, apart, `decode_state` of the state as stored from scratch, which only a cold
shipment pays. `encode_status` writes the records of the replay, in their order, as the worker does: each
version once, the version it was made from written before it (streams.codec reuses the JSON of the parts they
share). The versions are made first; then each stage runs over all of them under one pair of
`process_time` readings (a timer call per version would cost more than some stages). Every final record is checked
against a full `project`. `--profile` adds pyinstrument's flat view of the record stage. `--template` takes the
shipments' events from another journey (examples/journey-trade.jsonl: customs, identities, a letter of credit, the
release) instead of examples/journey.jsonl.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

from bench.workload import AUTHORITY, DEFAULT_EVENTS_PER_SHIPMENT, DEFAULT_SHIPMENTS, TEMPLATE, Workload, generate
from hubconf.settings import Settings
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event, decode_stored, encode_status
from streams.step import stored_values
from streams.copies import Copy
from streams.merge import ShipmentState, absorb_copies, project

STAGES = ("record", "encode_state", "encode_status", "decode_state")
Recorder = Callable[[ShipmentRecord | None, ShipmentState, ShipmentState, list[Copy]], ShipmentRecord]


def _recorder(full: bool) -> Recorder:
    if full:
        return lambda previous, before, after, new: project(after, AUTHORITY)
    from streams.projection import advance  # absent before the incremental projection: --full runs without it

    return lambda previous, before, after, new: advance(previous, before, after, new, AUTHORITY)


Version = tuple[ShipmentRecord | None, ShipmentState, ShipmentState, list[Copy]]


def replay(workload: Workload, record_of: Recorder, batch_max: int) -> tuple[list[Version], list[ShipmentRecord]]:
    """Every version the workload makes (previous record, state before, state after, new copies) and the record
    made of each."""
    versions: list[Version] = []
    made: list[ShipmentRecord] = []
    warm: dict[str, tuple[ShipmentState, ShipmentRecord]] = {}
    messages = list(zip(workload.keys, workload.lines))
    for start in range(0, len(messages), batch_max):
        accepted: dict[str, list[HubEvent]] = defaultdict(list)
        for _, value in messages[start : start + batch_max]:
            decoded = decode_event(value)
            if isinstance(decoded, Rejection) or decoded.shipment_id is None:
                raise SystemExit(f"the workload holds an invalid event: {decoded}")
            accepted[decoded.shipment_id].append(decoded)
        for shipment_id, items in accepted.items():
            before, previous = warm.get(shipment_id, (ShipmentState(shipment_id), None))
            state, new_copies = absorb_copies(before, [Copy.of(event) for event in items])
            if state is not before:
                versions.append((previous, before, state, new_copies))
                made.append(record_of(previous, before, state, new_copies))
                warm[shipment_id] = (state, made[-1])
    return versions, made


def timed(versions: list[Version], made: list[ShipmentRecord], record_of: Recorder) -> dict[str, float]:
    """CPU seconds of each stage over every version, one stage at a time (no timer call per version)."""
    clock = time.process_time
    spent: dict[str, float] = {}
    gc.disable()  # the worker tunes its collector (worker/app.py GC_THRESHOLDS); here it would walk every record kept
    start = clock()
    records = [record_of(*version) for version in versions]
    spent["record"] = clock() - start
    del records  # freed outside the timed stages (the records written below are the replay's own)
    whole: dict[str, bool] = {}  # per shipment: stored whole so far
    start = clock()
    for _, before, after, new_copies in versions:
        whole[after.shipment_id] = stored_values(whole.get(after.shipment_id, True), before, after, new_copies)[2]
    spent["encode_state"] = clock() - start
    stored = [stored_values(True, ShipmentState(after.shipment_id), after, ())[:2] for _, _, after, _ in versions]
    readable = [(value, dict(entries)) for value, entries in stored]
    start = clock()
    for record, (_, _, _, new_copies) in zip(made, versions):
        encode_status(record, new_copies)
    spent["encode_status"] = clock() - start
    start = clock()
    for value, entries in readable:
        decode_stored(value, entries.get)
    spent["decode_state"] = clock() - start
    gc.enable()
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.projection", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="a full project per version instead of advance")
    parser.add_argument("--shipments", type=int, default=DEFAULT_SHIPMENTS)
    parser.add_argument("--events-per-shipment", type=int, default=DEFAULT_EVENTS_PER_SHIPMENT)
    parser.add_argument("--profile", action="store_true", help="also print pyinstrument's flat profile of the record stage")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the journey the shipments' events come from")
    args = parser.parse_args(argv)

    workload = generate(args.shipments, args.events_per_shipment, template=args.template)
    batch_max = Settings.from_env().batch_max
    record_of = _recorder(args.full)
    versions, made = replay(workload, record_of, batch_max)
    final = {after.shipment_id: (after, record) for (_, _, after, _), record in zip(versions, made)}
    wrong = sum(1 for state, record in final.values() if record != project(state, AUTHORITY))
    gc.collect()
    spent = timed(versions, made, record_of)
    events = workload.events
    print(f"[projection] {workload.describe()}; batches of {batch_max}; {len(versions)} versions "
          f"({events / len(versions):.2f} events per version); {'full project' if args.full else 'advance'}")
    for stage in STAGES:
        print(f"    {stage:<14} {1e6 * spent[stage] / events:7.1f} us CPU per event")
    hot = spent["record"] + spent["encode_state"] + spent["encode_status"]
    print(f"[projection] project plus encode: {1e6 * hot / events:.1f} us CPU per event; "
          f"{len(final) - wrong}/{len(final)} final records equal a full project")
    if args.profile:
        from bench.profile_merge import flat_profile
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        gc.disable()  # as in the timed stage: a collection would be charged to whatever frame it interrupted
        profiler.start()
        for version in versions:
            record_of(*version)
        profiler.stop()
        gc.enable()
        root = profiler.last_session.root_frame() if profiler.last_session else None
        if root is None:
            raise SystemExit("pyinstrument recorded nothing")
        own, inclusive = flat_profile(root)
        for title, table in (("self", own), ("total", inclusive)):
            print(f"[projection] record stage, top 20 functions by {title} time:")
            for where, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:20]:
                print(f"    {100 * seconds / root.time:5.1f}%  {where}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

"""What one shipment's version costs as the shipment grows: CPU per version and what it stores against the number of
events the state holds, without Kafka.

    python -m bench.long_shipment [--reports N] [--marks 50,200,1000] [--template JSONL]

One shipment: the template journey's booking and its first `--base` events, then `--reports` tracking reports of
the sea leg's carrier on its leg, each with its own event id a minute after the one before (a carrier reporting a
container's position again and again: one status and classifier, so the record does not grow, only the state).
Each report is taken in alone, as the worker takes a single event: `streams.step.merge_step` with the shipment warm
(the previous step's state, record and registrations), as worker.stages.MergeHandler calls it.

Printed per window (from one mark to the next): the events the state holds at its end, the state whole (as
`streams.codec.encode_state` would write it, for comparison), the value stored under the shipment's key (the state
whole while it is small, else its head: streams.step.SPLIT_STATE_BYTES), the bytes the window's last version wrote
(that value and the entries it changed), the status message's size, and the CPU per version over
the window (one `process_time` pair per window, collector off); the ratio is against the first window, measured in
the same run. And the cold read at the mark: every value the versions so far left in the store (the head or the state
whole, and each entry) written to a new RocksDB, which is closed and opened again, then the CPU of one
`streams.codec.read_state` from it, as a restored worker or the presumed-loss clock reads a shipment it does not
hold warm (the state whole: one get and one decode; split: one get for the head and one for each entry); beside it,
the CPU of decoding the same state from its whole form in memory (`decode_state`), what a read would cost with no
store and no split. The run stops where the value under the key or the status message would pass `hubconf.topics.MAX_OUTPUT_BYTES`:
there the worker sets aside (`too_large`) every further event that would grow it.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.workload import AUTHORITY, TEMPLATE, _template
from hubconf.topics import MAX_OUTPUT_BYTES
from schemas.events import HubEvent
from rocksdict import Rdict

from streams.codec import Rejection, decode_event, decode_state, encode_state, read_state
from streams.step import Stored, merge_step

SEA_MODE = 1  # UN/ECE Recommendation 19: maritime


def _event(document: dict[str, Any]) -> HubEvent:
    decoded = decode_event(orjson.dumps(document))
    if isinstance(decoded, Rejection):
        raise SystemExit(f"template event {document.get('event_id')} is invalid: {decoded.reason}")
    return decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=8000, help="reports after the base journey (stops earlier at the bound)")
    parser.add_argument("--base", type=int, default=20, help="template events before the reports (the booking first)")
    parser.add_argument("--marks", default="50,200,1000,1700,4000", help="report counts that end a window")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    journey, described = _template(args.template)
    booking = next(e for e in journey if e["event_type"] == "booking")
    base = [booking] + [e for e in journey if e is not booking][: args.base - 1]
    sea = [leg["sequence"] for leg in booking["payload"]["legs"] if leg["mode"] == SEA_MODE]
    report = next(
        e for e in journey
        if e["event_type"] == "tracking" and e["classifier"] == "ACT" and e["payload"].get("leg") in sea
    )
    shipment_id = booking["shipment_id"]
    marks = sorted({int(mark) for mark in args.marks.split(",") if mark.strip()} | {args.reports})
    stored: Stored | None = None
    store: dict[bytes, bytes] = {}  # what the versions so far left in the shipments store

    def take(event: HubEvent) -> tuple[int, int, int]:
        nonlocal stored
        result = merge_step(shipment_id, stored, [(None, event)], AUTHORITY, resend_on_replay=False)
        if result.write is None or result.status is None:
            raise SystemExit(f"event {event.key} made no version")
        write = result.write
        stored = Stored(write.state, write.record, write.registrations, write.whole)
        store.update(write.puts(shipment_id.encode()))
        return len(write.encoded), len(write.encoded) + sum(len(entry) for _, entry in write.entries), len(result.status)

    for document in base:
        take(_event(document))
    start = datetime.fromisoformat(report["occurred_at"].replace("Z", "+00:00"))
    reports = (
        _event({
            **report,
            "event_id": f"{report['event_id']}-ping-{n}",
            "occurred_at": (start + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recorded_at": (start + timedelta(minutes=n, seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
        for n in range(args.reports)
    )
    print(
        f"[long_shipment] {shipment_id} ({described}): {len(base)} journey events, then up to {args.reports:,} reports of "
        f"{report['source']} on leg {report['payload']['leg']} ({report['payload']['status']}, ACT), one a version",
        flush=True,
    )
    print(
        f"{'reports':>8} {'events held':>11} {'whole KiB':>10} {'at key KiB':>10} {'written KiB':>11} {'status KiB':>10} "
        f"{'us/version':>11} {'ratio':>6} {'cold read ms':>12} {'decode whole ms':>15}"
    )
    gc.collect()
    gc.disable()  # what is measured is the merge's work, not when the collector happens to run
    first: float | None = None
    window, spent, taken = 0, 0.0, 0
    try:
        for event in reports:
            began = time.process_time()
            head_bytes, written_bytes, status_bytes = take(event)
            spent += time.process_time() - began
            window += 1
            taken += 1
            over = max(head_bytes, status_bytes) > MAX_OUTPUT_BYTES
            if taken in marks or over:
                per = spent / window * 1e6
                first = first or per
                assert stored is not None
                encoded = encode_state(stored.state)  # outside the timed step
                whole = len(encoded)
                cold = _cold_read(store, shipment_id, stored)
                began = time.process_time()
                decode_state(encoded)
                in_memory = time.process_time() - began
                print(
                    f"{taken:>8,} {len(stored.state.copies):>11,} {whole / 1024:>10.1f} {head_bytes / 1024:>10.1f} "
                    f"{written_bytes / 1024:>11.1f} {status_bytes / 1024:>10.1f} {per:>11.1f} {per / first:>6.2f} "
                    f"{cold * 1e3:>12.2f} {in_memory * 1e3:>15.2f}",
                    flush=True,
                )
                window, spent = 0, 0.0
            if over:
                print(
                    f"[long_shipment] the value under the shipment's key or the status passed MAX_OUTPUT_BYTES ({MAX_OUTPUT_BYTES:,}) at {taken:,} reports: "
                    "the worker sets aside every further event that would grow it (too_large)"
                )
                break
    finally:
        gc.enable()
    return 0


def _cold_read(store: dict[bytes, bytes], shipment_id: str, stored: Stored) -> float:
    """Seconds of CPU to read the shipment's state from a RocksDB holding `store`, opened afresh."""
    with tempfile.TemporaryDirectory(prefix="long_shipment-") as directory:
        db = Rdict(directory)
        for key, value in store.items():
            db[key] = value
        db.close()
        db = Rdict(directory)
        try:
            began = time.process_time()
            state = read_state(db.get, shipment_id)
            spent = time.process_time() - began
        finally:
            db.close()
    if state is None or encode_state(state) != encode_state(stored.state):
        raise SystemExit(f"the state read back from the store is not the one the last version made ({shipment_id})")
    return spent


if __name__ == "__main__":
    sys.exit(main())

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
the same run. The run stops where the value under the key or the status message would pass `hubconf.topics.MAX_OUTPUT_BYTES`:
there the worker sets aside (`too_large`) every further event that would grow it.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.workload import AUTHORITY, TEMPLATE, _template
from hubconf.topics import MAX_OUTPUT_BYTES
from schemas.events import HubEvent
from streams.codec import Rejection, decode_event, encode_state
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

    def take(event: HubEvent) -> tuple[int, int, int]:
        nonlocal stored
        result = merge_step(shipment_id, stored, [(None, event)], AUTHORITY, resend_on_replay=False)
        if result.write is None or result.status is None:
            raise SystemExit(f"event {event.key} made no version")
        write = result.write
        stored = Stored(write.state, write.record, write.registrations, write.whole)
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
        f"{'us/version':>11} {'ratio':>6}"
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
                whole = len(encode_state(stored.state))  # outside the timed step
                print(
                    f"{taken:>8,} {len(stored.state.copies):>11,} {whole / 1024:>10.1f} {head_bytes / 1024:>10.1f} "
                    f"{written_bytes / 1024:>11.1f} {status_bytes / 1024:>10.1f} {per:>11.1f} {per / first:>6.2f}",
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


if __name__ == "__main__":
    sys.exit(main())

"""What one shipment's version costs as the shipment grows: CPU per version and the stored state's size against the
number of events the state holds, without Kafka.

    python -m bench.long_shipment [--reports N] [--marks 50,200,1000] [--template JSONL]

One shipment: the template journey's booking and its first `--base` events, then `--reports` tracking reports of
the sea leg's carrier on its leg, each with its own event id a minute after the one before (a carrier reporting a
container's position again and again: one status and classifier, so the record does not grow, only the state).
Each report is taken in alone, as the worker takes a single event: `streams.step.merge_step` with the shipment warm
(the previous step's state, record and registrations), as worker.stages.MergeHandler calls it.

Printed per window (from one mark to the next): the events the state holds at its end, the stored state's and the
status message's size, and the CPU per version over the window (one `process_time` pair per window, collector off);
the ratio is against the first window, measured in the same run. The run stops where the stored state would pass
`hubconf.topics.MAX_OUTPUT_BYTES`: there the worker sets aside (`too_large`) every further event that would grow it.
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
from streams.codec import Rejection, decode_event
from streams.step import Stored, merge_step

SEA_MODE = 1  # UN/ECE Recommendation 19: maritime


def _event(document: dict[str, Any]) -> HubEvent:
    decoded = decode_event(orjson.dumps(document))
    if isinstance(decoded, Rejection):
        raise SystemExit(f"template event {document.get('event_id')} is invalid: {decoded.reason}")
    return decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=3000, help="reports after the base journey (stops earlier at the bound)")
    parser.add_argument("--base", type=int, default=20, help="template events before the reports (the booking first)")
    parser.add_argument("--marks", default="50,100,200,500,1000,1500", help="report counts that end a window")
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

    def take(event: HubEvent) -> tuple[int, int]:
        nonlocal stored
        result = merge_step(shipment_id, stored, [(None, event)], AUTHORITY, resend_on_replay=False)
        if result.write is None or result.status is None:
            raise SystemExit(f"event {event.key} made no version")
        stored = Stored(result.write.state, result.write.record, result.write.registrations)
        return len(result.write.encoded), len(result.status)

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
    print(f"{'reports':>8} {'events held':>11} {'state KiB':>10} {'status KiB':>10} {'us/version':>11} {'ratio':>6}")
    gc.collect()
    gc.disable()  # what is measured is the merge's work, not when the collector happens to run
    first: float | None = None
    window, spent, taken = 0, 0.0, 0
    try:
        for event in reports:
            began = time.process_time()
            state_bytes, status_bytes = take(event)
            spent += time.process_time() - began
            window += 1
            taken += 1
            over = state_bytes > MAX_OUTPUT_BYTES
            if taken in marks or over:
                per = spent / window * 1e6
                first = first or per
                assert stored is not None
                print(
                    f"{taken:>8,} {len(stored.state.copies):>11,} {state_bytes / 1024:>10.1f} {status_bytes / 1024:>10.1f} "
                    f"{per:>11.1f} {per / first:>6.2f}",
                    flush=True,
                )
                window, spent = 0, 0.0
            if over:
                print(
                    f"[long_shipment] the stored state passed MAX_OUTPUT_BYTES ({MAX_OUTPUT_BYTES:,}) at {taken:,} reports: "
                    "the worker sets aside every further event that would grow it (too_large)"
                )
                break
    finally:
        gc.enable()
    return 0


if __name__ == "__main__":
    sys.exit(main())

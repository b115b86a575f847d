"""A source fills a shipment it does not serve.

The state keeps the copies the record refuses (another carrier's reports on a leg it does not carry), so the record
can say why. Kept without bound, a carrier could send such reports until the shipment's state was within a few
bytes of what one message may hold (hubconf.topics.MAX_OUTPUT_BYTES): from then on the shipment's own events were
set aside as too large. Sent before the booking, the reports left no room for the booking itself. Now a source
holds at most streams.quota.QUOTA_BYTES of a shipment's state in copies the record does not count; the rest is
dead-lettered with its original bytes and the reason `over_quota`, and the parties' events go in as before. (The
state is now stored as a head and an entry per event, so the copies' bytes no longer add up in one value; the head
and the record, which lists each refused report, still grow with their number: see FLOOD_BOUND.)

Each attack is also run with the quota lifted, to show it still reaches what it attacks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hubconf import topics as topic_names
from runtime.api import Out
from streams import quota
from streams.codec import encode_event
from streams.copies import Copy
from streams.merge import ShipmentState, apply_all, project
from streams.quota import OVER_QUOTA, QUOTA_BYTES

from tests.security.merging import TOPICS, Merge, sscc
from tests.unit.builders import AUTHORITY, SHIPMENT, booking_doc, hub_event, settlement_doc, tracking_doc

STRANGER = "carrier.stranger"  # carries no leg of the shipment


def report(number: int, packages: int, *, source: str = STRANGER, revised: float | None = None) -> dict[str, Any]:
    """A valid tracking report on the first leg listing `packages` SSCCs (about 21 bytes each)."""
    doc = tracking_doc("received", leg=1, occurred=20, event_id=f"fill-{number}", source=source, revised=revised)
    doc["payload"]["ssccs"] = [sscc(number * 100_000 + serial) for serial in range(packages)]
    return doc


def fill(merge: Merge, batches: list[tuple[int, int]]) -> list[Out]:
    """Send (count, packages) batches of the stranger's reports, one batch per handler call."""
    outs: list[Out] = []
    number = 0
    for count, packages in batches:
        docs = [report(number + n, packages) for n in range(count)]
        number += count
        outs += merge(merge.records(*docs))
    return outs


# ~46 reports of 22 KB, then smaller ones: without the quota, when the state was stored whole, it ended within 400
# bytes of the bound (see FLOOD_BOUND for what the attack takes now)
TOP_UP = [(16, 1_000)] * 3 + [(20, 100)] * 4 + [(40, 10)] * 3


def held_by(state: ShipmentState, source: str) -> int:
    return sum(len(copy.json()) for held in state.copies.values() for copy in state.history(held.event.key) if copy.event.source == source)


def codes(outs: list[Out]) -> list[bytes]:
    return [dict(out.headers)[topic_names.DLQ_CODE] for out in outs if out.topic == TOPICS.dlq]


def test_a_stranger_cannot_crowd_out_a_shipments_own_events() -> None:
    merge = Merge()
    merge(merge.records(booking_doc()))
    records_before = merge.offset + 1
    outs = fill(merge, TOP_UP)
    sent = merge.offset + 1 - records_before

    state = merge.state()
    assert 0 < held_by(state, STRANGER) <= QUOTA_BYTES
    dead = codes(outs)
    assert dead.count(b"not_entitled") == len(state.copies) - 1  # those kept are refused by the record, as before
    aside = [out for out in outs if out.topic == TOPICS.dlq and dict(out.headers)[topic_names.DLQ_CODE] == OVER_QUOTA.encode()]
    assert len(aside) == sent - (len(state.copies) - 1)
    for out in aside:
        document = orjson.loads(out.value or b"")
        assert document["source"] == STRANGER and document["event_id"].startswith("fill-")  # its original bytes
        assert str(QUOTA_BYTES).encode() in dict(out.headers)[topic_names.DLQ_REASON]

    # the shipment's own carrier still reports, with a report as large as a real one may be
    own = report(999, 9_000, source="carrier.road")
    later = merge(merge.records(own, tracking_doc("departed", leg=1, occurred=40)))
    assert codes(later) == []
    status = orjson.loads(next(out.value for out in later if out.topic == TOPICS.status) or b"{}")
    assert status["record"]["legs"][0]["status"] == "departed"
    assert f"carrier.road/{own['event_id']}" in {applied["event"]["source"] + "/" + applied["event"]["event_id"] for applied in status["applied"]}
    kept = [hub_event(orjson.loads(encode_event(copy.event))) for copy in state.copies.values()]
    assert merge.state() == apply_all(ShipmentState(SHIPMENT), [*kept, hub_event(own), hub_event(tracking_doc("departed", leg=1, occurred=40))])
    assert merge.counters.applied + merge.counters.duplicates + merge.counters.dead_lettered - merge.counters.refused == merge.offset + 1


# With the state stored as a head and an entry per event (streams.codec), a source's copies no longer add up in one
# stored value: TOP_UP's megabyte of reports goes in whole without the quota. What still grows with every event is the
# head (its fingerprint and key) and the record (each refused report is listed in it): with the quota lifted, 8,000
# one-package reports of the stranger filled the record to the bound (52 s, 2026-12-05). The tests without the quota
# lower the bound to FLOOD_BOUND so that a few hundred reports show the same.
FLOOD_BOUND = 60_000


def flood(merge: Merge, limit: int = 5_000) -> list[Out]:
    """The stranger's one-package reports, 100 a handler call, until one is set aside as too large."""
    outs: list[Out] = []
    for start in range(0, limit, 100):
        outs += merge(merge.records(*[report(10_000 + start + n, 1) for n in range(100)]))
        if b"too_large" in codes(outs):
            return outs
    raise AssertionError(f"{limit} reports did not reach the bound")


def test_without_the_quota_the_strangers_reports_crowd_them_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "QUOTA_BYTES", 10**9)
    monkeypatch.setattr(topic_names, "MAX_OUTPUT_BYTES", FLOOD_BOUND)
    merge = Merge()
    merge(merge.records(booking_doc()))
    flood(merge)
    later = merge(merge.records(tracking_doc("departed", leg=1, occurred=40)))
    assert codes(later) == [b"too_large"]  # the attack is real: the quota is what stops it


def test_with_the_quota_the_same_flood_leaves_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topic_names, "MAX_OUTPUT_BYTES", FLOOD_BOUND)
    merge = Merge()
    merge(merge.records(booking_doc()))
    outs: list[Out] = []
    for start in range(0, 1_000, 100):
        outs += merge(merge.records(*[report(10_000 + start + n, 1) for n in range(100)]))
    assert b"too_large" not in codes(outs) and OVER_QUOTA.encode() in codes(outs)
    later = merge(merge.records(tracking_doc("departed", leg=1, occurred=40)))
    assert codes(later) == []


def test_before_the_booking_a_squatter_leaves_room_for_it() -> None:
    merge = Merge()
    fill(merge, TOP_UP)
    assert held_by(merge.state(), STRANGER) <= QUOTA_BYTES

    outs = merge(merge.records(booking_doc()))

    assert codes(outs).count(b"too_large") == 0
    record = project(merge.state(), AUTHORITY)
    assert record.booking is not None and record.responsible_operator == "mto.test"
    assert all(r.kind == "not_entitled" for r in record.rejected)  # the squatter's kept reports, refused now


def test_without_the_quota_the_squatter_takes_the_booking_s_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "QUOTA_BYTES", 10**9)
    monkeypatch.setattr(topic_names, "MAX_OUTPUT_BYTES", FLOOD_BOUND)
    merge = Merge()
    flood(merge)
    outs = merge(merge.records(booking_doc()))
    assert codes(outs) == [b"too_large"]
    assert project(merge.state(), AUTHORITY).booking is None


def test_revisions_of_one_report_keep_one_copy_whoever_sends_them() -> None:
    """Revising one event over and over (a DCSA carrier may update an estimate many times): the state keeps an
    earlier copy only of a money event (an invoice says what a charge used to be), so the revisions of a report,
    a stranger's or the leg's own carrier's, leave one copy and their fingerprints, not a copy each."""
    merge = Merge()
    merge(merge.records(booking_doc()))
    outs: list[Out] = []
    for revision in range(60):
        outs += merge(merge.records(report(0, 1_000, revised=21 + revision), report(1, 1_000, source="carrier.road", revised=21 + revision)))
    state = merge.state()
    assert codes(outs).count(OVER_QUOTA.encode()) == 0 and b"too_large" not in codes(outs)
    assert held_by(state, STRANGER) < 25_000 and held_by(state, "carrier.road") < 25_000  # one copy each, ~21 KB
    assert state.superseded == {} and len(state.seen) == 1 + 2 * 60
    latest = state.copies[f"{STRANGER}/fill-0"].event
    assert latest.revised_at is not None and latest.revised_at.hour == (21 + 59) % 24  # the newest revision wins


def test_revisions_of_a_charge_are_kept_and_count_against_a_strangers_quota() -> None:
    """A money event's earlier copies stay in the state: a stranger's charge revised over and over is still held to
    its quota."""
    merge = Merge()
    merge(merge.records(booking_doc()))
    outs: list[Out] = []
    for revision in range(40):
        charges = [(f"FRT{line:02d}", f"{1000 + revision}.00", "USD") for line in range(100)]  # a long bill
        doc = settlement_doc(charges, leg=1, source=STRANGER, event_id="bill-1", revised=21 + revision)
        outs += merge(merge.records(doc))
    assert OVER_QUOTA.encode() in codes(outs)
    assert held_by(merge.state(), STRANGER) <= QUOTA_BYTES


def test_a_party_reporting_on_its_own_part_has_no_quota() -> None:
    merge = Merge()
    merge(merge.records(booking_doc()))
    own = [report(n, 3_000, source="carrier.road") for n in range(6)]  # ~63 KB each, ~380 KB in all
    outs = merge(merge.records(*own))
    assert codes(outs) == []
    assert held_by(merge.state(), "carrier.road") > 5 * QUOTA_BYTES
    assert merge.counters.applied == 1 + len(own)


def test_the_mto_has_no_quota_even_before_its_booking() -> None:
    merge = Merge()
    own = [report(n, 3_000, source="mto.test") for n in range(3)]  # the MTO answers for every leg
    outs = merge(merge.records(*own))
    assert codes(outs) == []
    assert held_by(merge.state(), "mto.test") > 2 * QUOTA_BYTES


def test_a_copy_that_fits_after_one_that_did_not_still_goes_in() -> None:
    booked = apply_all(ShipmentState(SHIPMENT), [hub_event(booking_doc())])
    large, small = Copy.of(hub_event(report(0, 4_000))), Copy.of(hub_event(report(1, 10)))
    assert len(large.json()) > QUOTA_BYTES > len(small.json())
    state = apply_all(booked, [large.event, small.event])
    aside = quota.over_quota(state, project(state, AUTHORITY), [large, small], AUTHORITY)
    assert list(aside) == [large.fingerprint]

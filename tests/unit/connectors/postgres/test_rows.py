"""Status messages to projection rows: the newest version per shipment, each event copy once, loud on nonsense."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import re

import orjson
import pytest

from connectors.postgres.rows import collect, parse_status
from runtime.api import Record
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event, encode_record, encode_status
from streams.merge import Copy, ShipmentState, apply, fingerprint, project

from ...builders import AUTHORITY

JOURNEY = Path(__file__).resolve().parents[4] / "examples" / "journey.jsonl"
SHIPMENT = "SHP-2026-000042"
KEY = SHIPMENT.encode()


Msg = partial(Record, "hub.shipment.status")  # a consumed status message: partition, offset, key, value


def journey() -> list[HubEvent]:
    events = []
    for line in JOURNEY.read_bytes().splitlines():
        event = decode_event(line)
        assert not isinstance(event, Rejection), event
        events.append(event)
    return events


def versions(events: list[HubEvent]) -> tuple[list[bytes], ShipmentRecord]:
    """The status message of every version, as the worker emits them (one per new event copy), and the last record."""
    state = ShipmentState(SHIPMENT)
    out = []
    for event in events:
        state = apply(state, event)
        out.append(encode_status(project(state, AUTHORITY), [Copy(fingerprint(event), event)]))
    return out, project(state, AUTHORITY)


EVENTS = journey()
VERSIONS, FINAL = versions(EVENTS)


def test_a_booked_record_names_its_shipper_and_operator_and_keeps_the_record_json() -> None:
    row, events = parse_status(KEY, VERSIONS[0])
    assert (row.shipment_id, row.version, row.status) == (SHIPMENT, 1, "booked")
    assert (row.shipper, row.mto) == ("shipper.chengdu-elec", "mto.westcorridor")
    assert row.updated_at == datetime(2026, 3, 2, 1, 3, tzinfo=timezone.utc)
    assert orjson.loads(row.record) == orjson.loads(VERSIONS[0])["record"]
    assert [(e.event_key, e.event_type, e.record_version) for e in events] == [("mto.westcorridor/bkg-1", "booking", 1)]


def test_a_record_still_awaiting_its_booking_has_no_shipper_or_operator() -> None:
    state = apply(ShipmentState(SHIPMENT), EVENTS[1])  # a waybill, before any booking
    row, _ = parse_status(KEY, encode_status(project(state, AUTHORITY), []))
    assert (row.status, row.shipper, row.mto) == ("awaiting_booking", None, None)


def test_a_batch_keeps_only_the_highest_version_of_each_shipment_whatever_the_order() -> None:
    last = len(VERSIONS)
    shuffled = [VERSIONS[20], VERSIONS[last - 1], VERSIONS[2]]
    batch = collect(Msg(0, offset, KEY, value) for offset, value in enumerate(shuffled))
    assert [(row.shipment_id, row.version) for row in batch.shipments] == [(SHIPMENT, last)]
    assert orjson.loads(batch.shipments[0].record) == orjson.loads(encode_record(FINAL))
    assert sorted(e.record_version for e in batch.events) == [3, 21, last]


def test_an_event_copy_seen_twice_in_a_batch_is_written_once_with_its_first_version() -> None:
    replayed = [VERSIONS[4], VERSIONS[4]]
    batch = collect(Msg(3, offset, KEY, value) for offset, value in enumerate(replayed))
    assert [(e.event_key, e.record_version) for e in batch.events] == [("carrier.oceanline/swb-1", 5)]


def test_a_revision_of_an_event_is_a_second_copy_under_the_same_key() -> None:
    keys = [parse_status(KEY, value)[1][0] for value in VERSIONS[20:22]]
    assert keys[0].event_key == keys[1].event_key == "carrier.oceanline/t3-est-arr"
    assert keys[0].fingerprint != keys[1].fingerprint


def _status(record_changes: dict[str, object] | None = None, applied: object = None) -> bytes:
    document = orjson.loads(VERSIONS[0])
    document["record"].update(record_changes or {})
    if applied is not None:
        document["applied"] = applied
    return orjson.dumps(document)


def _other_shipments_event() -> list[dict[str, object]]:
    item = orjson.loads(VERSIONS[0])["applied"][0]
    item["event"]["shipment_id"] = "SHP-OTHER"
    return [item]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (KEY, None, "tombstone"),
        (KEY, b"{not json", "not JSON"),
        (KEY, b"[]", "expected an object holding 'record'"),
        (b"SHP-ELSEWHERE", VERSIONS[0], "is not the record's shipment_id"),
        (None, VERSIONS[0], "is not the record's shipment_id"),
        (KEY, _status({"version": "1"}), "'version' should be int"),
        (KEY, _status({"version": True}), "'version' should be int"),
        (KEY, _status({"status": None}), "'status' should be str"),
        (KEY, _status({"updated_at": "2026-03-02T01:03:00"}), "has no timezone"),
        (KEY, _status({"updated_at": "yesterday"}), "not an ISO 8601 timestamp"),
        (KEY, _status(applied=[{"fingerprint": "ab", "event": {"event_type": "booking"}}]), "applied event ab"),
        (KEY, _status(applied=_other_shipments_event()), "belongs to 'SHP-OTHER'"),
    ],
)
def test_a_message_the_hub_could_not_have_written_is_set_aside_with_its_reason_and_the_batch_goes_on(
    key: bytes | None, value: bytes | None, reason: str
) -> None:
    batch = collect([Msg(6, 98, KEY, VERSIONS[0]), Msg(6, 99, key, value), Msg(6, 100, KEY, VERSIONS[1])])
    [aside] = batch.set_aside
    assert aside.record == Msg(6, 99, key, value)
    assert re.search(rf"^malformed status message: .*{reason}", aside.reason), aside.reason
    assert [row.version for row in batch.shipments] == [2] and len(batch.events) == 2

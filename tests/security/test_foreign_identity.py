"""Event identities as references (DCSA T&T 3.0 retractions): a party reaches only its own events through them.

A bare retraction names the event it discards by its identity reference, which the shipment holding the event
registers. The identity includes the source, so another carrier that knows the eventID (T&T feeds share them) can
neither retract the event nor slip its own report onto the shipment: its reference resolves to nothing. Pure: the
offline resolution and fold are the stream's own functions.
"""

from __future__ import annotations

import orjson

from connectors.dcsa.parse import parse
from schemas.events import HubEvent, TrackingEvent, identity_reference
from streams.merge import fold
from streams.references import resolve_offline
from tests.unit.builders import AUTHORITY, booking_doc, hub_event

SAMPLE = b"""{"eventRouting": {"originatingParty": {"partyCode": "OLNE", "codeListProvider": "SMDG", "codeListName": "LCL"}},
 "eventID": "8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61", "eventDateTime": "2026-03-03T10:20:00Z",
 "eventUpdatedDateTime": "2026-03-03T10:25:00Z", "eventLocation": {"UNLocationCode": "CNQZH"},
 "eventClassification": {"eventTypeCode": "TRANSPORT", "eventClassifierCode": "ACT", "transportEventTypeCode": "DEPA"},
 "shipmentDetails": {"documentReference": {"typeCode": "BKG", "reference": "QZH-BKG-1"}}}"""


def _booking() -> HubEvent:
    doc = booking_doc()
    doc["payload"]["legs"][2]["carrier_booking"] = "QZH-BKG-1"
    return hub_event(doc)


def _retraction(source: str) -> TrackingEvent:
    body = {**orjson.loads(SAMPLE), "isRetracted": True, "eventUpdatedDateTime": "2026-03-04T00:00:00Z"}
    [event] = parse(orjson.dumps(body), source)
    assert isinstance(event, TrackingEvent)
    return event


def test_another_carrier_cannot_retract_an_event_by_its_event_id() -> None:
    [departure] = parse(SAMPLE, "carrier.sea")
    assert isinstance(departure, TrackingEvent)
    forged = _retraction("carrier.road")  # same eventID and originating party, sent by another carrier
    placed, waiting = resolve_offline([_booking(), departure, forged], AUTHORITY)
    assert waiting == [forged]  # its identity reference names no registered event
    [record] = fold(placed, AUTHORITY).values()
    assert record.retracted_events == 0
    assert [m.set_by for m in record.legs[2].milestones] == [departure.key]
    # the carrier's own retraction, by contrast, finds the event and discards it
    placed, waiting = resolve_offline([_booking(), departure, _retraction("carrier.sea")], AUTHORITY)
    assert waiting == []
    [record] = fold(placed, AUTHORITY).values()
    assert record.retracted_events == 1 and record.legs[2].milestones == []


def test_an_identity_reference_reaches_only_the_events_of_its_own_source() -> None:
    [departure] = parse(SAMPLE, "carrier.sea")
    assert isinstance(departure, TrackingEvent)
    stolen = identity_reference("carrier.sea", departure.event_id)
    intruder = departure.model_copy(update={"source": "carrier.stranger", "event_id": "x-1", "references": [stolen]})
    placed, _ = resolve_offline([_booking(), departure, intruder], AUTHORITY)
    [record] = fold(placed, AUTHORITY).values()
    # it reaches the shipment (it named the sea carrier's event), but a party carrying no leg is refused there
    assert [r.event for r in record.rejected] == ["carrier.stranger/x-1"]
    assert [m.set_by for m in record.legs[2].milestones] == [departure.key]

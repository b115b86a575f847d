"""DCSA eBL 3.0 transport document notifications and Booking 2.0 notifications, read by the DCSA parser (issue 14).

Field names and status codes as the standards' OpenAPI texts define them (DCSA-OpenAPI ebl/v3/EBL_v3.0.0.yaml:
TransportDocumentNotification, TransportDocumentData, TransportDocument; bkg/v2/BKG_v2.0.0.yaml: BookingNotification,
BookingNotificationData). They are the MTO's word on its through document and its booking."""

from __future__ import annotations

from itertools import permutations
from typing import Any

import orjson
import pytest

from connectors.dcsa.parse import parse
from schemas.events import BookingStatusEvent, CarrierReference, HubEvent, WaybillEvent
from schemas.rejection import Rejection
from streams.merge import fold
from streams.references import resolve_offline

from ..builders import AUTHORITY, MTO, SHIPMENT, booking_doc, hub_event

TD = "HHL71800000"
CONTAINER = "MSKU4977374"  # ISO 6346, check digit 4


def ebl(status: str, *, ident: str, time: str, full: bool = True, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"transportDocumentStatus": status, "transportDocumentReference": TD, **data}
    if full:
        body["transportDocument"] = {
            "transportDocumentReference": TD,
            "transportDocumentStatus": status,
            "transportDocumentTypeCode": "BOL",
            "isToOrder": True,
            "references": [{"type": "CR", "value": "CUST-REF-9"}, {"type": "AKG", "value": "VIN 123"}],
            "consignmentItems": [{"carrierBookingReference": SHIPMENT, "descriptionOfGoods": ["Machine parts"]}],
            "utilizedTransportEquipments": [{"equipment": {"equipmentReference": CONTAINER, "ISOEquipmentCode": "22G1"}}],
        }
    return notification("org.dcsa.transport-document.v3", body, ident=ident, time=time)


def booking(status: str, *, ident: str, time: str, **data: Any) -> dict[str, Any]:
    body = {"bookingStatus": status, "carrierBookingReference": SHIPMENT, **data}
    return notification("org.dcsa.booking.v2", body, ident=ident, time=time)


def notification(kind: str, data: dict[str, Any], *, ident: str, time: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": ident,
        "source": "https://mto.test/dcsa",
        "type": kind,
        "time": time,
        "datacontenttype": "application/json",
        "subscriptionReference": "30675492-50ff-4e17-a7df-7a487a8ad343",
        "data": data,
    }


def read(*items: dict[str, Any], source: str = MTO) -> list[HubEvent | Rejection]:
    return parse(orjson.dumps(list(items)), source)


def only(item: dict[str, Any], source: str = MTO) -> HubEvent | Rejection:
    [result] = read(item, source=source)
    return result


def test_an_issued_transport_document_is_the_through_document_of_the_booked_shipment() -> None:
    event = only(ebl("ISSUED", ident="n-1", time="2026-03-02T10:00:00Z"))
    assert isinstance(event, WaybillEvent)
    assert event.shipment_id == SHIPMENT  # the MTO's carrierBookingReference is the hub shipment id
    assert (event.source, event.occurred_at.isoformat()) == (MTO, "2026-03-02T10:00:00+00:00")
    payload = event.payload
    assert (payload.document_kind, payload.document_number, payload.issuer, payload.leg, payload.action) == (
        "multimodal_transport_document", TD, MTO, None, "issued"
    )
    assert payload.containers == [CONTAINER]
    assert event.references == [
        CarrierReference(kind="transport_document", value=TD),
        CarrierReference(kind="business_transaction", value="CUST-REF-9", type="CR"),
    ]  # AKG (a vehicle identification number) is no reference the hub resolves


def test_a_resent_notification_keeps_its_identity_and_another_one_gets_its_own() -> None:
    first, again, other = read(
        ebl("ISSUED", ident="n-1", time="2026-03-02T10:00:00Z"),
        ebl("ISSUED", ident="n-1", time="2026-03-02T10:00:00Z"),
        ebl("ISSUED", ident="n-2", time="2026-03-02T10:00:00Z"),
    )
    assert isinstance(first, WaybillEvent) and isinstance(again, WaybillEvent) and isinstance(other, WaybillEvent)
    assert first.key == again.key != other.key


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("SURRENDERED_FOR_DELIVERY", "surrendered"),
        ("SURRENDER_FOR_DELIVERY", "surrendered"),  # the notification description's spelling
        ("SURRENDERED_FOR_AMENDMENT", "surrendered_for_amendment"),
        ("SURRENDER_FOR_AMENDMENT", "surrendered_for_amendment"),
        ("VOIDED", "voided"),
        ("VOID", "voided"),
    ],
)
def test_surrender_and_amendment_statuses_map_to_document_steps(status: str, action: str) -> None:
    event = only(ebl(status, ident=f"n-{status}", time="2026-03-05T10:00:00Z", full=False))
    assert isinstance(event, WaybillEvent)
    assert event.payload.action == action
    # a light notification names the document by its number alone: the through document registers it
    assert (event.shipment_id, event.references) == (None, [CarrierReference(kind="transport_document", value=TD)])


@pytest.mark.parametrize("status", ["DRAFT", "APPROVED", "PENDING_SURRENDER_FOR_DELIVERY", "PENDING_SURRENDER_FOR_AMENDMENT"])
def test_statuses_that_change_nothing_are_refused_as_not_recorded(status: str) -> None:
    result = only(ebl(status, ident="n-9", time="2026-03-01T10:00:00Z"))
    assert isinstance(result, Rejection) and result.code == "not_recorded"
    assert result.reason == (
        f"event 0 (id 'n-9'): data.transportDocumentStatus {status} changes nothing the hub records: it records "
        "ISSUED, SURRENDERED_FOR_DELIVERY, SURRENDER_FOR_DELIVERY, SURRENDERED_FOR_AMENDMENT, SURRENDER_FOR_AMENDMENT, "
        "VOIDED, VOID"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"data": {"transportDocumentStatus": "SHIPPED", "transportDocumentReference": TD}},
         "data.transportDocumentStatus 'SHIPPED' is not a status the standard defines"),
        ({"data": {"transportDocumentStatus": "ISSUED"}}, "data.transportDocumentReference is required"),
        ({"data": {"transportDocumentStatus": "ISSUED", "transportDocumentReference": "HHL 718"}},
         "data.transportDocumentReference 'HHL 718': String should match pattern"),
        ({"specversion": "0.3"}, "specversion '0.3' is not the CloudEvents version DCSA uses, '1.0'"),
        ({"type": "org.dcsa.shipping-instructions.v3"}, "type 'org.dcsa.shipping-instructions.v3' is not a notification"),
        ({"subscriptionReference": None}, "subscriptionReference is required"),
        ({"datacontenttype": "application/xml"}, "datacontenttype 'application/xml' is not 'application/json'"),
        ({"time": "2026-03-02 10:00"}, "time:"),
    ],
)
def test_what_does_not_conform_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    item = ebl("ISSUED", ident="n-1", time="2026-03-02T10:00:00Z") | change
    result = only(item)
    assert isinstance(result, Rejection) and result.code == "invalid_dcsa", result
    assert reason in result.reason


def test_two_bookings_on_one_through_document_are_refused() -> None:
    item = ebl("ISSUED", ident="n-1", time="2026-03-02T10:00:00Z")
    item["data"]["transportDocument"]["consignmentItems"].append({"carrierBookingReference": "SHP-TEST-0002"})
    result = only(item)
    assert isinstance(result, Rejection) and "one through document covers one booking" in result.reason


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"surrenderRequestReference": "s-1", "transportDocumentReference": TD, "surrenderRequestCode": "SREQ"},
         "an eBL surrender request (SREQ/AREQ) is the holder's request to the issuer, not the surrender"),
        ({"transportDocumentReference": TD, "transportDocumentStatus": "ISSUED"},
         "a bare eBL transport document has no event identity or time"),
        ({"bookingStatus": "CONFIRMED", "carrierBookingReference": SHIPMENT}, "a bare booking has no event identity"),
    ],
)
def test_bare_documents_are_refused_with_what_to_send_instead(item: dict[str, Any], reason: str) -> None:
    result = only(item)
    assert isinstance(result, Rejection) and result.code == "invalid_dcsa" and reason in result.reason


@pytest.mark.parametrize(
    ("status", "extra", "action"),
    [
        ("CONFIRMED", {}, "confirmed"),
        ("CONFIRMED", {"amendedBookingStatus": "AMENDMENT_CONFIRMED"}, "confirmed"),
        ("REJECTED", {}, "rejected"),
        ("DECLINED", {}, "cancelled"),
        ("CANCELLED", {}, "cancelled"),
        ("CONFIRMED", {"bookingCancellationStatus": "CANCELLATION_CONFIRMED"}, "cancelled"),
    ],
)
def test_booking_decisions(status: str, extra: dict[str, Any], action: str) -> None:
    event = only(booking(status, ident=f"b-{status}", time="2026-03-01T08:00:00Z", **extra))
    assert isinstance(event, BookingStatusEvent)
    assert (event.shipment_id, event.payload.action, event.payload.leg) == (SHIPMENT, action, None)


def test_a_booking_known_only_by_its_request_reference_names_it() -> None:
    item = booking("REJECTED", ident="b-1", time="2026-03-01T08:00:00Z")
    del item["data"]["carrierBookingReference"]
    item["data"]["carrierBookingRequestReference"] = SHIPMENT
    event = only(item)
    assert isinstance(event, BookingStatusEvent) and event.shipment_id == SHIPMENT


@pytest.mark.parametrize("status", ["RECEIVED", "PENDING_UPDATE", "UPDATE_RECEIVED", "PENDING_AMENDMENT", "COMPLETED"])
def test_booking_progress_is_not_a_decision(status: str) -> None:
    result = only(booking(status, ident="b-1", time="2026-03-01T08:00:00Z"))
    assert isinstance(result, Rejection) and result.code == "not_recorded" and status in result.reason


def test_booking_without_any_reference_or_with_an_unknown_status_is_refused() -> None:
    item = booking("CONFIRMED", ident="b-1", time="2026-03-01T08:00:00Z")
    del item["data"]["carrierBookingReference"]
    [missing, unknown] = read(item, booking("ACCEPTED", ident="b-2", time="2026-03-01T08:00:00Z"))
    assert isinstance(missing, Rejection) and "carrierBookingRequestReference is required" in missing.reason
    assert isinstance(unknown, Rejection) and unknown.code == "invalid_dcsa"


# --- into the record: issuance, amendment, surrender, in any order ---------------------------------------------------


LIFECYCLE = [
    ebl("ISSUED", ident="n-1", time="2026-03-02T10:00:00Z"),
    ebl("SURRENDERED_FOR_AMENDMENT", ident="n-2", time="2026-03-03T10:00:00Z", full=False),
    ebl("ISSUED", ident="n-3", time="2026-03-03T12:00:00Z"),  # the amended document
    ebl("SURRENDERED_FOR_DELIVERY", ident="n-4", time="2026-03-09T10:00:00Z", full=False),
    booking("CONFIRMED", ident="b-1", time="2026-03-01T08:00:00Z"),
]


def lifecycle_record(items: list[dict[str, Any]]) -> Any:
    events = [e for e in read(*items) if not isinstance(e, Rejection)]
    placed, waiting = resolve_offline([hub_event(booking_doc()), *events], AUTHORITY)
    assert waiting == []  # the light notifications found the shipment through the through document's number
    return fold(placed, AUTHORITY)[SHIPMENT]


def test_issue_amend_and_surrender_reach_the_through_document_and_the_booking_status() -> None:
    record = lifecycle_record(LIFECYCLE)
    document = record.through_document
    assert document is not None and record.rejected == []
    assert (document.number, document.status, document.holder) == (TD, "surrendered", "shipper.test")
    assert [(a.action, a.set_by == f"{MTO}/{e.event_id}") for a, e in zip(document.amendments, read(*LIFECYCLE)[1:3])] == [
        ("surrendered_for_amendment", True),
        ("amended", True),
    ]
    assert record.booking_status == "confirmed"


def test_the_lifecycle_is_the_same_in_every_order() -> None:
    expected = lifecycle_record(LIFECYCLE).model_dump(exclude={"version"})
    for order in permutations(LIFECYCLE):
        assert lifecycle_record(list(order)).model_dump(exclude={"version"}) == expected


def test_a_second_issuance_without_a_surrender_for_amendment_is_refused() -> None:
    twice = [LIFECYCLE[0], ebl("ISSUED", ident="n-5", time="2026-03-04T10:00:00Z")]
    record = lifecycle_record(twice)
    assert [r.event for r in record.rejected] == [f"{MTO}/{read(twice[1])[0].event_id}"]  # type: ignore[union-attr]
    assert "a document is issued once, and again only as its amendment" in record.rejected[0].reason


def test_an_amendment_announced_without_the_full_document_keeps_what_it_does_not_name() -> None:
    light = [
        LIFECYCLE[0],
        LIFECYCLE[1],
        ebl("ISSUED", ident="n-6", time="2026-03-03T12:00:00Z", full=False),
    ]
    document = lifecycle_record(light).through_document
    assert document is not None
    assert (document.status, document.containers, document.holder) == ("issued", [CONTAINER], "shipper.test")
    assert [a.action for a in document.amendments] == ["surrendered_for_amendment", "amended"]

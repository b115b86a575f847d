"""DCSA Track & Trace 2.2 and 3.0 payloads to canonical tracking events: exact mappings, reasons, never an exception."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.dcsa.parse import MAX_PAYLOAD_BYTES, RETRACTION_CODE_LIST, parse
from connectors.formats import EMPTY, parser
from schemas.events import CarrierReference, HubEvent, TrackingEvent, identity_reference
from schemas.rejection import Rejection
from streams.copies import Copy, fingerprint
from streams.merge import fold
from streams.references import resolve_offline
from ..builders import AUTHORITY, booking_doc, hub_event

from .helpers import (
    byte_mutated_samples,
    json_values_with,
    mutated_json_samples,
    no_rejections,
    samples_of,
    single,
    tracking_event,
    untimed_fuzz,
    well_formed_events,
)

SAMPLES = samples_of("dcsa")
SOURCE = "carrier.oceanline"
TRANSPORT = "DCSA-TransportEventTypeCode"
EQUIPMENT = "DCSA-EquipmentEventTypeCode"
SHIPMENT = "DCSA-ShipmentEventTypeCode"
BOOKING = CarrierReference(kind="carrier_booking", value="SHA2605123")
BILL = CarrierReference(kind="bill_of_lading", value="OLNSHA26051234")
MSKU = CarrierReference(kind="container", value="MSKU9070323")
TGHU = CarrierReference(kind="container", value="TGHU7654320")
NGB_BOOKING = CarrierReference(kind="carrier_booking", value="NGB2606789")
NGB_BILL = CarrierReference(kind="bill_of_lading", value="OLNNGB26067890")
HLXU = CarrierReference(kind="container", value="HLXU1234561")
FORWARDER = CarrierReference(kind="forwarder_reference", value="FWD-778812")  # 2.2 `references` type FF


expected = partial(tracking_event, source=SOURCE)


def sample(name: str) -> list[HubEvent | Rejection]:
    return parse((SAMPLES / name).read_bytes(), SOURCE)


def events_of(name: str) -> list[HubEvent]:
    return no_rejections(sample(name))


def reasons(results: list[HubEvent | Rejection]) -> list[str]:
    assert all(isinstance(r, Rejection) for r in results), results
    return [r.reason for r in results if isinstance(r, Rejection)]


def event_doc(**changes: Any) -> dict[str, Any]:
    """A valid 2.2 equipment event, changed as asked (None removes a field)."""
    doc: dict[str, Any] = {
        "eventID": "0f0e0d0c-0000-4000-8000-000000000001",
        "eventCreatedDateTime": "2026-05-13T22:05:40Z",
        "eventType": "EQUIPMENT",
        "eventClassifierCode": "ACT",
        "eventDateTime": "2026-05-14T05:48:00+08:00",
        "equipmentEventTypeCode": "LOAD",
        "equipmentReference": "MSKU9070323",
        "emptyIndicatorCode": "LADEN",
        "eventLocation": {"UNLocationCode": "CNSHA"},
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def one(doc: Any) -> HubEvent | Rejection:
    return single(parse(orjson.dumps(doc), SOURCE))


# --- 2.2 ------------------------------------------------------------------------------------------------------------


def test_v22_transport_events_map_to_departed_and_estimated_arrival_at_the_call() -> None:
    assert events_of("v22_transport.json") == [
        expected(
            "dcsa:5e51e72c-d872-11ea-811c-0242ac130003", [BOOKING, BILL, FORWARDER, MSKU, TGHU],
            "2026-05-14T01:45:00", "2026-05-14T02:10:00", "departed", "DEPA", TRANSPORT,
            location="CNSHA", transport_means="IMO9706906", remarks="vessel OCEANLINE AURORA; export voyage 2619W; import voyage 2619W",
        ),
        expected(
            "dcsa:5e51e9f2-d872-11ea-811c-0242ac130003", [BOOKING],
            "2026-06-16T04:00:00", "2026-05-14T02:12:00", "arrived", "ARRI", TRANSPORT, classifier="EST",
            location="NLRTM", transport_means="IMO9706906",
            remarks="vessel OCEANLINE AURORA; export voyage 2619W; import voyage 2619W; delay WEA: Typhoon routing in the South China Sea",
        ),
    ]


def test_v22_equipment_events_map_laden_moves_and_leave_empty_and_stuffing_unknown() -> None:
    assert events_of("v22_equipment.json") == [
        expected(
            "dcsa:b3b9a3b4-6f0e-4b8e-9c55-1d7f7f0b1a01", [MSKU, BOOKING],
            "2026-05-11T07:20:00", "2026-05-11T07:31:12", "received", "GTIN", EQUIPMENT,
            location="CNSHA", container="MSKU9070323",
        ),
        expected(
            "dcsa:b3b9a3b4-6f0e-4b8e-9c55-1d7f7f0b1a02", [MSKU, BOOKING, BILL],
            "2026-05-13T21:48:00", "2026-05-13T22:05:40", "loaded", "LOAD", EQUIPMENT,
            location="CNSHA", container="MSKU9070323", transport_means="IMO9706906", remarks="vessel OCEANLINE AURORA; export voyage 2619W",
        ),
        expected(
            "dcsa:b3b9a3b4-6f0e-4b8e-9c55-1d7f7f0b1a03", [MSKU, BILL],
            "2026-06-17T08:15:00", "2026-06-17T09:02:00", "discharged", "DISC", EQUIPMENT,
            location="NLRTM", container="MSKU9070323",
        ),
        expected(
            "dcsa:b3b9a3b4-6f0e-4b8e-9c55-1d7f7f0b1a04", [MSKU, BILL],
            "2026-06-19T12:31:00", "2026-06-19T12:40:00", "handed_over", "GTOT", EQUIPMENT,
            location="NLRTM", container="MSKU9070323",
        ),
        expected(
            "dcsa:b3b9a3b4-6f0e-4b8e-9c55-1d7f7f0b1a05", [MSKU, BILL],
            "2026-06-23T07:55:00", "2026-06-23T08:00:00", "unknown", "GTIN", EQUIPMENT,
            location="NLRTM", container="MSKU9070323", remarks="empty container",
        ),
        expected(
            "dcsa:b3b9a3b4-6f0e-4b8e-9c55-1d7f7f0b1a06", [TGHU, BOOKING],
            "2026-05-10T02:30:00", "2026-05-10T03:00:00", "unknown", "STUF", EQUIPMENT,
            location="CNSHA", container="TGHU7654320",
        ),
    ]


def test_v22_shipment_events_are_document_statuses_kept_raw_with_their_references() -> None:
    assert events_of("v22_shipment.json") == [
        expected(
            "dcsa:c0ffee00-0000-4000-8000-000000000001", [BOOKING],
            "2026-05-02T00:59:00", "2026-05-02T01:00:00", "unknown", "CONF", SHIPMENT, remarks="BKG SHA2605123 confirmed",
        ),
        expected(
            "dcsa:c0ffee00-0000-4000-8000-000000000002", [BOOKING],
            "2026-05-09T05:45:00", "2026-05-09T06:00:00", "unknown", "DRFT", SHIPMENT,
            remarks="SHI SI-SHA2605123-01 drafted; reason Consignee address incomplete",
        ),
        expected(
            "dcsa:c0ffee00-0000-4000-8000-000000000003", [MSKU, BILL],
            "2026-05-15T02:00:00", "2026-05-15T02:00:00", "unknown", "ISSU", SHIPMENT, remarks="TRD OLNSHA26051234 issued",
        ),
        expected(
            "dcsa:c0ffee00-0000-4000-8000-000000000004", [CarrierReference(kind="sea_waybill", value="OLNSHA26059876")],
            "2026-05-16T01:30:00", "2026-05-16T02:00:00", "unknown", "ISSU", SHIPMENT, remarks="TRD OLNSHA26059876 issued",
        ),
    ]


def test_unknown_codes_map_to_unknown_and_keep_the_raw_code_and_list() -> None:
    assert events_of("v22_unknown_codes.json") == [
        expected(
            "dcsa:d1e2f3a4-0000-4000-8000-00000000000a", [MSKU, BILL],
            "2026-06-18T06:40:00", "2026-06-18T07:00:00", "unknown", "INSP", EQUIPMENT,
            location="NLRTM", container="MSKU9070323",
        ),
        expected(
            "dcsa:d1e2f3a4-0000-4000-8000-00000000000b", [BOOKING],
            "2026-06-19T22:00:00", "2026-06-18T07:05:00", "unknown", "OMIT", TRANSPORT, classifier="PLN",
            location="BEANR",
        ),
    ]


# --- 3.0 ------------------------------------------------------------------------------------------------------------


def test_v30_events_are_identified_by_originating_party_and_event_id_and_revised_at_their_update_time() -> None:
    assert events_of("v30_events.json") == [
        expected(
            "dcsa:SMDG/LCL/OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61", [NGB_BOOKING, NGB_BILL],
            "2026-07-02T10:20:00", "2026-07-02T10:25:00", "departed", "DEPA", TRANSPORT, revised="2026-07-02T10:25:00",
            location="CNNGB", transport_means="IMO9811000", remarks="vessel OCEANLINE BOREAS; export voyage 2627E; import voyage 2627E",
        ),
        expected(
            "dcsa:SMDG/LCL/OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a62", [HLXU, NGB_BOOKING],
            "2026-08-09T05:00:00", "2026-07-02T10:26:00", "discharged", "DISC", EQUIPMENT, classifier="EST",
            revised="2026-07-02T10:26:00", location="DEHAM", container="HLXU1234561",
        ),
        expected(
            "dcsa:SMDG/LCL/OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a63", [NGB_BOOKING],
            "2026-06-25T08:00:00", "2026-06-25T08:01:00", "unknown", "CONF", SHIPMENT, revised="2026-06-25T08:01:00",
            remarks="BKG NGB2606789 confirmed",
        ),
    ]


def test_v30_update_is_a_later_revision_of_the_same_event_and_stays_an_estimate() -> None:
    original = events_of("v30_events.json")[1]
    [update] = events_of("v30_update.json")
    assert update == expected(
        "dcsa:SMDG/LCL/OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a62", [HLXU, NGB_BOOKING],
        "2026-08-11T11:30:00", "2026-07-20T04:00:00", "discharged", "DISC", EQUIPMENT, classifier="EST",
        revised="2026-07-20T04:00:00", location="DEHAM", container="HLXU1234561",
    )
    assert update.key == original.key
    assert Copy(fingerprint(update), update).rank > Copy(fingerprint(original), original).rank


def test_v30_retraction_retracts_the_same_identity_from_its_id_and_update_time_alone() -> None:
    original = events_of("v30_events.json")[0]
    [retraction] = events_of("v30_retraction.json")
    assert retraction == expected(
        "dcsa:SMDG/LCL/OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61",
        [identity_reference(SOURCE, "dcsa:SMDG/LCL/OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61")],
        "2026-07-03T01:00:00", "2026-07-03T01:00:00", "unknown", "isRetracted", RETRACTION_CODE_LIST,
        revised="2026-07-03T01:00:00", retracted=True,
    )
    assert retraction.key == original.key
    assert Copy(fingerprint(retraction), retraction).rank > Copy(fingerprint(original), original).rank


V30_RETRACTION = {
    "eventRouting": {"originatingParty": {"partyCode": "OLNE", "codeListProvider": "SMDG", "codeListName": "LCL"}},
    "eventID": "8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61",
    "isRetracted": True,
    "eventUpdatedDateTime": "2026-07-03T01:00:00Z",
}


def test_a_bare_v30_retraction_is_accepted_where_it_used_to_be_refused_for_lacking_a_classification() -> None:
    # On 4c7e811: "not a DCSA event: a 2.2 event has `eventType`, a 3.0 event `eventClassification`".
    event = one(V30_RETRACTION)
    assert isinstance(event, TrackingEvent)
    assert event.retracted and event.key == events_of("v30_events.json")[0].key


def test_a_retraction_is_not_refused_for_its_other_data_which_the_standard_calls_irrelevant() -> None:
    noisy = {**V30_RETRACTION, "eventClassification": {"eventTypeCode": "NOPE"}, "eventDateTime": "yesterday"}
    assert one(noisy) == one(V30_RETRACTION)


def test_a_retraction_without_an_update_time_is_refused_with_the_reason() -> None:
    assert one({**V30_RETRACTION, "eventUpdatedDateTime": None}) == Rejection(
        "invalid_dcsa",
        "event 0 (eventID '8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61'): a retraction needs eventUpdatedDateTime: it says "
        "when the event was discarded",
    )


def test_the_v30_identity_includes_the_originating_partys_code_list() -> None:
    other_list = {**V30_RETRACTION, "eventRouting": {"originatingParty": {"partyCode": "OLNE", "codeListProvider": "NMFTA"}}}
    first, second = one(V30_RETRACTION), one(other_list)
    assert isinstance(first, TrackingEvent) and isinstance(second, TrackingEvent)
    assert second.event_id == "dcsa:NMFTA//OLNE:8f6a7c1e-3b2d-4e5f-9a0b-1c2d3e4f5a61"
    assert first.key != second.key


def test_v30_vessel_and_voyages_on_the_transport_call_are_kept() -> None:
    # DCSA's Conformance-Gateway request: vesselTransport and the voyage objects sit inside transportCall.
    doc = {
        "eventID": "evt-trans-001",
        "eventDateTime": "2026-01-20T12:30:00Z",
        "eventUpdatedDateTime": "2026-01-20T12:31:00Z",
        "eventClassification": {"eventTypeCode": "TRANSPORT", "eventClassifierCode": "ACT", "transportEventTypeCode": "ARRI"},
        "shipmentDetails": {"documentReference": {"typeCode": "BKG", "reference": "ABC709951"}},
        "transportDetails": {
            "transportCall": {
                "exportVoyageNumberOrReference": {"carrierVoyageNumber": "V001E"},
                "importVoyageNumberOrReference": {"universalVoyageReference": "2301N"},
                "vesselTransport": {"vesselIMONumber": "9811000", "vesselName": "EXAMPLE VESSEL ALPHA"},
            }
        },
    }
    event = one(doc)
    assert isinstance(event, TrackingEvent)
    assert event.payload.transport_means == "IMO9811000"
    assert event.payload.remarks == "vessel EXAMPLE VESSEL ALPHA; export voyage V001E; import voyage 2301N"


def test_v30_reefer_events_are_kept_as_unknown_with_their_code_list() -> None:
    event = one(
        {
            "eventID": "r-001",
            "eventDateTime": "2026-07-05T00:00:00Z",
            "eventUpdatedDateTime": "2026-07-05T00:01:00Z",
            "eventClassification": {"eventTypeCode": "REEFER", "eventClassifierCode": "ACT", "reeferEventTypeCode": "MEAS"},
            "equipmentDetails": {"equipmentReference": "HLXU1234561"},
        }
    )
    assert event == expected(
        "dcsa:r-001", [HLXU], "2026-07-05T00:00:00", "2026-07-05T00:01:00", "unknown", "MEAS", "DCSA-ReeferEventTypeCode",
        revised="2026-07-05T00:01:00", container="HLXU1234561",
    )


# --- classifier, identity, references -------------------------------------------------------------------------------


@pytest.mark.parametrize("classifier", ["PLN", "EST", "ACT"])
def test_the_classifier_passes_through_so_an_estimate_never_becomes_an_actual(classifier: str) -> None:
    event = one(event_doc(eventClassifierCode=classifier))
    assert isinstance(event, TrackingEvent)
    assert (event.classifier, event.payload.status) == (classifier, "loaded")


def test_an_event_id_that_cannot_be_a_hub_event_id_becomes_a_stable_digest_of_the_identity() -> None:
    first, again = one(event_doc(eventID="load at berth 7")), one(event_doc(eventID="load at berth 7"))
    other = one(event_doc(eventID="load at berth 8"))
    assert isinstance(first, TrackingEvent) and isinstance(again, TrackingEvent) and isinstance(other, TrackingEvent)
    assert first.event_id.startswith("dcsa:h:") and first.event_id == again.event_id != other.event_id


def test_document_types_other_than_booking_and_transport_document_are_not_references() -> None:
    event = one(
        event_doc(
            documentReferences=[
                {"documentReferenceType": "SHI", "documentReferenceValue": "SI 42 (draft)"},
                {"documentReferenceType": "TRD", "documentReferenceValue": "OLNSHA26051234"},
            ]
        )
    )
    assert isinstance(event, TrackingEvent)
    assert event.references == [MSKU, BILL]


def test_a_document_reference_the_hub_cannot_hold_is_rejected() -> None:
    rejection = one(event_doc(documentReferences=[{"documentReferenceType": "BKG", "documentReferenceValue": "SHA 2605123"}]))
    assert isinstance(rejection, Rejection)
    assert rejection.reason.endswith(
        "documentReferences.0.documentReferenceValue 'SHA 2605123' is not a document reference the hub accepts "
        "(letters, digits, '.', '/', '-'; starting with a letter or digit; at most 35 characters)"
    )


def test_equipment_references_in_the_references_list_are_validated_containers() -> None:
    rejection = one(event_doc(references=[{"referenceType": "EQ", "referenceValue": "TGHU7654321"}]))
    assert rejection == Rejection(
        "invalid_dcsa",
        "event 0 (eventID '0f0e0d0c-0000-4000-8000-000000000001'): references.0.referenceValue: container number "
        "'TGHU7654321' fails its ISO 6346 check digit (expected 0)",
    )


# --- rejections -----------------------------------------------------------------------------------------------------


def test_malformed_events_are_rejected_one_by_one_with_a_reason_each() -> None:
    assert reasons(sample("malformed_events.json")) == [
        "event 0 (eventID 'e0000000-0000-4000-8000-000000000001'): eventDateTime is required",
        "event 1 (eventID 'e0000000-0000-4000-8000-000000000002'): the event names no equipment, booking or transport "
        "document reference: the hub cannot tell which shipment it is about",
        "event 2 (eventID 'e0000000-0000-4000-8000-000000000003'): equipmentReference: container number 'MSKU9070324' "
        "fails its ISO 6346 check digit (expected 3)",
        "event 3 (eventID 'e0000000-0000-4000-8000-000000000004'): eventClassifierCode 'REQ' is not PLN, EST or ACT",
        "event 4 (eventID 'e0000000-0000-4000-8000-000000000005'): eventDateTime: timestamp must carry a timezone "
        "offset (e.g. '2026-03-01T08:00:00Z')",
        "event 5 (eventID 'e0000000-0000-4000-8000-000000000006'): transportCall.UNLocationCode 'SHANGHAI': String "
        "should have at most 5 characters",
        "event 6 (eventID 'e0000000-0000-4000-8000-000000000007'): transportCall.vessel.vesselIMONumber '9706907' "
        "fails its IMO check digit (expected 6)",
        "event 7: an event is a JSON object, got a string",
        "event 8 (eventID 'e0000000-0000-4000-8000-000000000009'): eventClassification.eventTypeCode is required",
    ]
    assert {r.code for r in sample("malformed_events.json") if isinstance(r, Rejection)} == {"invalid_dcsa"}


def test_a_payload_that_is_not_json_is_one_rejection() -> None:
    [rejection] = sample("malformed_truncated.json")
    assert rejection == Rejection("invalid_json", "not valid UTF-8 JSON: unexpected end of data: line 1 column 79 (char 78)")


@pytest.mark.parametrize(
    ("raw", "rejection"),
    [
        (b"", Rejection("empty", "the payload is empty")),
        (b"42", Rejection("invalid_dcsa", "a DCSA payload is an event object or an array of events, got a number")),
        (b'"ARRI"', Rejection("invalid_dcsa", "a DCSA payload is an event object or an array of events, got a string")),
        (b"null", Rejection("invalid_dcsa", "a DCSA payload is an event object or an array of events, got null")),
    ],
)
def test_payloads_that_hold_no_events_are_one_rejection(raw: bytes, rejection: Rejection) -> None:
    assert parse(raw, SOURCE) == [rejection]


@pytest.mark.parametrize("raw", [b"\xff\xfe[]", b"[{", b"{'eventID': 1}", b'[{"a": NaN}]', b"[" * 5000])
def test_bytes_that_are_not_json_are_one_invalid_json_rejection(raw: bytes) -> None:
    [rejection] = parse(raw, SOURCE)
    assert isinstance(rejection, Rejection)
    assert rejection.code == "invalid_json" and rejection.reason.startswith("not valid UTF-8 JSON: ")


def test_an_oversized_payload_is_rejected_before_parsing() -> None:
    [rejection] = parse(b"[" + b" " * MAX_PAYLOAD_BYTES + b"]", SOURCE)
    assert rejection == Rejection("too_large", f"payload is {MAX_PAYLOAD_BYTES + 2} bytes; the limit is {MAX_PAYLOAD_BYTES}")


def test_payload_shapes_one_event_an_array_and_the_v30_events_body_give_the_same_event() -> None:
    doc = event_doc()
    shapes = [orjson.dumps(doc), orjson.dumps([doc]), orjson.dumps({"events": [doc]})]
    results = [parse(raw, SOURCE) for raw in shapes]
    assert results[0] == results[1] == results[2]
    assert isinstance(results[0][0], TrackingEvent)
    assert parse(b"[]", SOURCE) == []  # no event: connectors.formats refuses such a payload for every format
    assert parser("dcsa")(b"[]", SOURCE) == parser("dcsa")(b'{"events": []}', SOURCE) == [EMPTY]


def test_an_event_with_neither_shape_says_what_a_dcsa_event_looks_like() -> None:
    assert one({"eventID": "x-1"}) == Rejection(
        "invalid_dcsa", "event 0 (eventID 'x-1'): not a DCSA event: a 2.2 event has `eventType`, a 3.0 event `eventClassification`"
    )


# --- properties: never an exception ---------------------------------------------------------------------------------

JSON_VALUES = json_values_with(
    ["ACT", "EST", "PLN", "LOAD", "GTOT", "EQUIPMENT", "SHIPMENT", "TRANSPORT", "EMPTY", "BKG", "TRD", "SWB",
     "CNSHA", "MSKU9070323", "MSKU9070324", "2026-05-14T05:48:00+08:00", "2026-05-14T05:48:00", "9999-12-31T23:59:59-14:00",
     "0001-01-01T00:00:00+14:00", "", "x" * 200]
)
SAMPLE_NAMES = sorted(path.name for path in SAMPLES.glob("v*.json"))


def assert_well_formed(results: object) -> None:
    for event in well_formed_events(results):
        assert event.shipment_id is None and event.references and event.payload.leg is None
        assert event.source == SOURCE and event.event_id.startswith("dcsa:")


@untimed_fuzz(300)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_well_formed(parse(raw, SOURCE))


@untimed_fuzz(300)
@given(JSON_VALUES)
def test_arbitrary_json_never_raises(document: Any) -> None:
    assert_well_formed(parse(json.dumps(document).encode(), SOURCE))


@untimed_fuzz(500)
@given(mutated_json_samples(SAMPLES, SAMPLE_NAMES, JSON_VALUES))
def test_mutated_samples_never_raise(raw: bytes) -> None:
    assert_well_formed(parse(raw, SOURCE))


@untimed_fuzz(300)
@given(byte_mutated_samples(SAMPLES, SAMPLE_NAMES))
def test_byte_mutated_samples_never_raise(raw: bytes) -> None:
    assert_well_formed(parse(raw, SOURCE))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["PLN", "EST", "ACT"]), st.sampled_from(["GTIN", "LOAD", "DISC", "GTOT", "STUF", "ZZZZ"]))
def test_every_classifier_and_code_maps_without_upgrading_the_classifier(classifier: str, code: str) -> None:
    event = one(event_doc(eventClassifierCode=classifier, equipmentEventTypeCode=code))
    assert isinstance(event, TrackingEvent)
    assert (event.classifier, event.payload.raw_code, event.payload.code_list) == (classifier, code, EQUIPMENT)


# --- the 3.0 revision rules through reference resolution and the fold -----------------------------------------------


def _sea_booking() -> HubEvent:
    doc = booking_doc()
    doc["payload"]["legs"][2]["carrier_booking"] = "NGB2606789"
    return hub_event(doc)


def _v30(changes: dict[str, Any]) -> HubEvent:
    base = orjson.loads((SAMPLES / "v30_events.json").read_bytes())["events"][0]
    [event] = no_rejections(parse(orjson.dumps({**base, **changes}), "carrier.sea"))
    return event


@settings(max_examples=60, deadline=None)
@given(
    update_hour=st.integers(min_value=0, max_value=48),
    retraction_hour=st.integers(min_value=0, max_value=48),
    order=st.permutations(range(4)),
    repeats=st.lists(st.integers(min_value=0, max_value=3), max_size=4),
)
def test_a_retraction_discards_the_identity_in_any_order_even_against_a_later_update(
    update_hour: int, retraction_hour: int, order: list[int], repeats: list[int]
) -> None:
    original = _v30({})
    update = _v30({"eventUpdatedDateTime": f"2026-07-0{3 + update_hour // 24}T{update_hour % 24:02d}:00:00Z"})
    [retraction] = no_rejections(
        parse(
            orjson.dumps(
                {**V30_RETRACTION, "eventUpdatedDateTime": f"2026-07-0{3 + retraction_hour // 24}T{retraction_hour % 24:02d}:30:00Z"}
            ),
            "carrier.sea",
        )
    )
    pool = [_sea_booking(), original, update, retraction]
    sent = [pool[i] for i in order] + [pool[i] for i in repeats]
    placed, waiting = resolve_offline(sent, AUTHORITY)
    assert waiting == []  # the bare retraction found the shipment through the identity it names
    [record] = fold(placed, AUTHORITY).values()
    assert record.retracted_events == 1
    sea = record.legs[2]
    assert all(m.set_by != original.key for m in sea.milestones)
    assert sea.status == "planned"


def test_v30_shipment_references_keep_the_forwarders_reference_and_equipment() -> None:
    doc = {
        "eventID": "ff-1",
        "eventDateTime": "2026-07-05T00:00:00Z",
        "eventUpdatedDateTime": "2026-07-05T00:01:00Z",
        "eventClassification": {"eventTypeCode": "TRANSPORT", "eventClassifierCode": "ACT", "transportEventTypeCode": "DEPA"},
        "shipmentDetails": {
            "shipmentReferences": [
                {"typeCode": "FF", "reference": "MTO-44-0007"},
                {"typeCode": "EQ", "reference": "HLXU1234561"},
                {"typeCode": "FF", "reference": "not a reference / 7"},
                {"typeCode": "PO", "reference": "PO-1"},
            ]
        },
    }
    event = one(doc)
    assert isinstance(event, TrackingEvent)
    assert event.references == [
        CarrierReference(kind="forwarder_reference", value="MTO-44-0007"),
        HLXU,
        # issue 14: a purchase order is a business transaction, its DCSA type code kept (dropped on eeb4899)
        CarrierReference(kind="business_transaction", value="PO-1", type="PO"),
    ]
    assert event.payload.remarks == "forwarder reference not a reference / 7"

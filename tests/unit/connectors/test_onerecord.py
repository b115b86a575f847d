"""ONE Record LogisticsEvents (JSON-LD, compacted or expanded) to canonical tracking events: exact mappings, reasons,
never an exception."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.onerecord.parse import parse
from schemas.events import CarrierReference, HubEvent, TrackingEvent
from schemas.rejection import Rejection

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

SAMPLES = samples_of("onerecord")
SOURCE = "carrier.aircarrier"
CODES = "IATA-CargoIMP-StatusCode"
CARGO = "https://onerecord.iata.org/ns/cargo#"
LH_AWB = CarrierReference(kind="air_waybill", value="020-12345675")
LH_EVENTS = "1r:1r.aircarrier.example/logistics-objects/awb-020-12345675/logistics-events/"


def expected(
    event_id: str, awb: CarrierReference, occurred: str, recorded: str, status: str, raw_code: str, **fields: Any
) -> TrackingEvent:
    """A tracking event about one air waybill, in the IATA status code list."""
    return tracking_event(event_id, [awb], occurred, recorded, status, raw_code, CODES, source=SOURCE, **fields)


def sample(name: str) -> list[HubEvent | Rejection]:
    return parse((SAMPLES / name).read_bytes(), SOURCE)


def events_of(name: str) -> list[HubEvent]:
    return no_rejections(sample(name))


def event_doc(**changes: Any) -> dict[str, Any]:
    """A valid compacted 3.0 LogisticsEvent, changed as asked (None removes a term; keys without ':' get `cargo:`)."""
    doc: dict[str, Any] = {
        "@context": {"cargo": CARGO},
        "@id": "https://1r.aircarrier.example/logistics-objects/awb-020-12345675/logistics-events/e-1",
        "@type": "cargo:LogisticsEvent",
        "cargo:eventCode": {"@type": "cargo:CodeListElement", "cargo:code": "DEP"},
        "cargo:eventTimeType": {"@id": "cargo:ACTUAL"},
        "cargo:eventDate": "2026-04-21T23:55:00+08:00",
        "cargo:creationDate": "2026-04-21T16:02:31Z",
        "cargo:eventFor": {"@type": "cargo:Waybill", "cargo:waybillPrefix": "020", "cargo:waybillNumber": "12345675"},
    }
    for term, value in changes.items():
        key = term if term.startswith("@") else f"cargo:{term}"
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def one(doc: Any) -> HubEvent | Rejection:
    return single(parse(orjson.dumps(doc), SOURCE))


# --- samples --------------------------------------------------------------------------------------------------------


def test_a_compacted_event_with_its_waybill_embedded_maps_to_departed_with_the_airport_in_remarks() -> None:
    assert events_of("event_departed.json") == [
        expected(
            LH_EVENTS + "6c1f3c2e-5a0b-4b9e-8f8a-0d8e7c6b5a41", LH_AWB, "2026-04-21T15:55:00", "2026-04-21T16:02:31",
            "departed", "DEP", remarks="Consignment departed on flight LH8403; airport PVG",
        )
    ]


def test_a_flattened_graph_resolves_event_for_by_id_and_keeps_booking_unknown_and_the_estimate_estimated() -> None:
    assert events_of("events_graph.json") == [
        expected(
            LH_EVENTS + "0b9c5d1e-1111-4a6f-9e0d-7a1b2c3d4e01", LH_AWB, "2026-04-18T02:00:00", "2026-04-18T02:00:05",
            "unknown", "BKD", remarks="Booked on LH8403/21APR",
        ),
        expected(
            LH_EVENTS + "0b9c5d1e-1111-4a6f-9e0d-7a1b2c3d4e02", LH_AWB, "2026-04-21T06:10:00", "2026-04-21T06:12:40",
            "received", "RCS", location="CNSHA", remarks="Received from shipper; airport PVG",
        ),
        expected(
            LH_EVENTS + "0b9c5d1e-1111-4a6f-9e0d-7a1b2c3d4e03", LH_AWB, "2026-04-22T03:40:00", "2026-04-21T06:15:00",
            "arrived", "ARR", classifier="EST", remarks="airport FRA",
        ),
    ]


def test_expanded_jsonld_with_a_piece_linking_to_its_waybill_maps_arrival_milestones() -> None:
    awb = CarrierReference(kind="air_waybill", value="160-22223331")
    events = "1r:1r.handler.example/logistics-objects/piece-7f3a/logistics-events/1d2e3f40-aaaa-4bbb-8ccc-00000000000"
    assert events_of("events_expanded.json") == [
        expected(events + "1", awb, "2026-04-22T07:05:00", "2026-04-22T07:06:10", "discharged", "RCF", remarks="airport FRA"),
        expected(events + "2", awb, "2026-04-22T09:30:00", "2026-04-22T09:30:02", "arrived", "NFD", location="DEFRA"),
        expected(events + "3", awb, "2026-04-23T06:15:00", "2026-04-23T06:16:00", "delivered", "DLV", location="DEFRA"),
    ]


def test_the_2x_draft_spellings_linked_object_plain_codes_and_actual_are_read() -> None:
    awb = CarrierReference(kind="air_waybill", value="176-87654324")
    events = "1r:1r.example.com/logistics-objects/1a8ded38-1804-467c-a369-81a411416b3c/logistics-events/afb4b8cf-288a-459c-97fd-ccd538ec52"
    assert events_of("events_draft_set.json") == [
        expected(
            events + "7f", awb, "2026-04-01T10:20:00", "2026-04-01T10:38:01", "departed", "DEP",
            remarks="Consignment departed on a specific flight; airport DXB",
        ),
        expected(
            events + "8f", awb, "2026-04-01T04:30:00", "2026-04-01T04:38:01", "unknown", "MAN",
            remarks="Consignment manifested on a specific flight",
        ),
    ]


def test_an_unknown_code_is_kept_raw_and_an_event_without_time_type_reports_what_happened() -> None:
    assert events_of("event_unknown_code.json") == [
        expected(
            LH_EVENTS + "9e8d7c6b-2222-4c3d-8e9f-000000000010", LH_AWB, "2026-04-22T10:00:00", "2026-04-22T10:00:30",
            "unknown", "TRM", remarks="To be transferred to another airline; location FRA-CC2",
        )
    ]


# --- terms, time types, identity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_type", "classifier"),
    [
        ("Actual", "ACT"),
        ("ESTIMATED", "EST"),
        ({"@id": "cargo:PLANNED", "@type": "cargo:EventTimeType"}, "PLN"),
        ({"@id": f"{CARGO}ESTIMATED"}, "EST"),
        ([{"@id": f"{CARGO}ACTUAL"}], "ACT"),
    ],
)
def test_every_spelling_of_the_time_type_gives_its_classifier(time_type: Any, classifier: str) -> None:
    event = one(event_doc(eventTimeType=time_type))
    assert isinstance(event, TrackingEvent)
    assert (event.classifier, event.payload.status) == (classifier, "departed")


def test_a_prefix_bound_to_the_cargo_namespace_in_the_context_is_read() -> None:
    doc = {
        "@context": {"c1r": f"{CARGO}"},
        "@id": "https://1r.aircarrier.example/logistics-objects/awb-020-12345675/logistics-events/e-2",
        "@type": "c1r:LogisticsEvent",
        "c1r:eventCode": "ARR",
        "c1r:eventDate": "2026-04-22T05:40:00+02:00",
        "c1r:creationDate": "2026-04-22T03:41:00Z",
        "c1r:eventFor": {"@type": "c1r:Waybill", "c1r:waybillNumber": "02012345675"},
        "c1r:eventLocation": {"c1r:locationCodes": ["DEFRA"]},
    }
    assert one(doc) == expected(
        LH_EVENTS + "e-2", LH_AWB, "2026-04-22T03:40:00", "2026-04-22T03:41:00", "arrived", "ARR", location="DEFRA"
    )


def test_an_iri_too_long_for_a_hub_event_id_is_replaced_by_its_stable_digest() -> None:
    iri = "https://1r.aircarrier.example/logistics-objects/awb-020-12345675/logistics-events/" + "a" * 60 + "?rev=2"
    event = one(event_doc(**{"@id": iri}))
    assert isinstance(event, TrackingEvent)
    assert event.event_id == "1r:sha256:" + hashlib.sha256(iri.encode()).hexdigest()[:40]
    assert one(event_doc(**{"@id": iri})) == event


def test_a_blank_node_is_no_identity() -> None:
    assert one(event_doc(**{"@id": "_:b0"})) == Rejection(
        "invalid_onerecord", "node 0 (@id '_:b0'): @id '_:b0' is a blank node, which names nothing outside this payload"
    )


def test_a_waybill_number_failing_mod_7_is_rejected_and_one_passing_is_hyphenated() -> None:
    rejection = one(event_doc(eventFor={"@type": "cargo:Waybill", "cargo:waybillNumber": "020-12345676"}))
    assert isinstance(rejection, Rejection)
    assert rejection.reason.endswith("eventFor: air waybill '020-12345676' fails its mod-7 check digit (expected 5)")
    event = one(event_doc(eventFor={"@type": "cargo:Waybill", "cargo:waybillNumber": "02012345675"}))
    assert isinstance(event, TrackingEvent) and event.references == [LH_AWB]


# --- rejections -----------------------------------------------------------------------------------------------------


def test_malformed_events_are_rejected_one_by_one_with_a_reason_each() -> None:
    prefix = "node {} (@id '...bjects/awb-020-12345675/logistics-events/f0000000-0000-4000-8000-00000000000{}'): "
    assert sample("malformed_events.json") == [
        Rejection("invalid_onerecord", prefix.format(0, 1) + "eventFor is required: the logistics object (waybill, shipment, piece) the event is about"),
        Rejection(
            "invalid_onerecord",
            prefix.format(1, 2) + "eventFor does not carry an air waybill (its @id 'https://1r.aircarrier.example/logistics-"
            "objects/shipment-unk...' is not described in the payload): describe the Waybill (waybillPrefix, "
            "waybillNumber), or the Shipment or Piece linking to it, in the payload",
        ),
        Rejection("invalid_onerecord", prefix.format(2, 3) + "eventFor: air waybill '020-12345670' fails its mod-7 check digit (expected 5)"),
        Rejection(
            "invalid_onerecord",
            prefix.format(3, 4) + "eventFor names only house waybill 'HSHA-77812'; the hub addresses air cargo by the "
            "master air waybill (add the master Waybill to the payload)",
        ),
        Rejection("invalid_onerecord", prefix.format(4, 5) + "creationDate is required"),
        Rejection("invalid_onerecord", prefix.format(5, 6) + "eventTimeType 'cargo:REQUESTED' is not ACTUAL, ESTIMATED or PLANNED"),
        Rejection("invalid_onerecord", prefix.format(6, 7) + "eventDate: '21 April 2026' is not an ISO 8601 timestamp"),
        Rejection("invalid_onerecord", "node 7: @id is required: the IRI the event's ONE Record server gave it is its identity"),
        Rejection(
            "invalid_onerecord",
            prefix.format(8, 9) + '@type is required (a LogisticsEvent says `"@type": "cargo:LogisticsEvent"`)',
        ),
    ]


def test_a_payload_without_a_logistics_event_is_one_rejection_naming_what_it_holds() -> None:
    assert sample("malformed_not_an_event.json") == [
        Rejection("invalid_onerecord", "the payload holds no LogisticsEvent (node types: cargo:Waybill)")
    ]


def test_a_payload_that_is_not_json_is_one_rejection() -> None:
    assert sample("malformed_truncated.json") == [
        Rejection("invalid_json", "not valid UTF-8 JSON: unexpected end of data: line 1 column 117 (char 116)")
    ]


@pytest.mark.parametrize(
    ("raw", "rejection"),
    [
        (b"", Rejection("empty", "the payload is empty")),
        (b"7", Rejection("invalid_onerecord", "a ONE Record payload is a JSON-LD object or array, got a number")),
        (b"[]", Rejection("invalid_onerecord", "the payload holds no LogisticsEvent (node types: none)")),
        (b'{"@graph": []}', Rejection("invalid_onerecord", "the payload holds no LogisticsEvent (node types: none)")),
    ],
)
def test_payloads_that_hold_no_events_are_one_rejection(raw: bytes, rejection: Rejection) -> None:
    assert parse(raw, SOURCE) == [rejection]


def test_a_code_longer_than_the_hub_keeps_is_rejected() -> None:
    rejection = one(event_doc(eventCode="D" * 36))
    assert isinstance(rejection, Rejection)
    assert rejection.reason.endswith(f"eventCode '{'D' * 36}' is longer than 35 characters")


# --- properties: never an exception ---------------------------------------------------------------------------------

JSON_VALUES = json_values_with(
    ["cargo:LogisticsEvent", "LogisticsEvent", "cargo:ACTUAL", "Estimated", "DEP", "RCF", "cargo:HOUSE", "020",
     "12345675", "12345670", "DEFRA", "FRA", "_:b1", "2026-04-21T23:55:00+08:00", "2026-04-21T23:55:00",
     "9999-12-31T23:59:59-14:00", "", "x" * 200, f"{CARGO}eventCode", "@id"],
    keys=st.sampled_from(["@id", "@type", "@value", "cargo:code", "cargo:waybillNumber"]) | st.text(max_size=12),
)
SAMPLE_NAMES = sorted(path.name for path in SAMPLES.glob("event*.json"))


def assert_well_formed(results: object) -> None:
    events = well_formed_events(results)
    assert results, "a payload always gives at least one result"
    for event in events:
        assert event.shipment_id is None and event.payload.leg is None and event.event_id.startswith("1r:")
        assert [reference.kind for reference in event.references] == ["air_waybill"] * len(event.references)
        assert event.references and event.source == SOURCE


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
@given(
    st.sampled_from(["ACTUAL", "ESTIMATED", "PLANNED"]),
    st.sampled_from(["BKD", "RCS", "DEP", "ARR", "RCF", "NFD", "DLV", "ZZZ"]),
)
def test_every_time_type_and_code_maps_without_upgrading_the_classifier(time_type: str, code: str) -> None:
    event = one(event_doc(eventTimeType={"@id": f"cargo:{time_type}"}, eventCode=code))
    assert isinstance(event, TrackingEvent)
    assert (event.classifier, event.payload.raw_code) == ({"ACTUAL": "ACT", "ESTIMATED": "EST", "PLANNED": "PLN"}[time_type], code)

"""The EPCIS 2.0 parser: each sample's exact canonical events and rejections, duplicates found by the canonical event
hash, error declarations as retractions, and that no input bytes make it raise or hang."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from connectors.epcis import parse
from connectors.epcis.event_hash import event_hash
from schemas.events import TrackingEvent
from schemas.rejection import Rejection

from ..strategies import mutate
from .helpers import FUZZ, Doc, canonical, canonical_tracking, samples_of, well_formed_events

SAMPLES = samples_of("epcis")
SOURCE = "carrier.cr-rail"
UUID = "urn:uuid:6f1c2a5e-1d3b-4c1e-9a43-0c6d2c1f0a0"
CONTAINER = "urn:epc:id:bic:CSQU3054383"
SSCC, OTHER_SSCC = "urn:epc:id:sscc:6901234.0000012345", "urn:epc:id:sscc:6901234.0000012346"


def hub_id(event: Doc) -> str:
    """The hub event id of an EPCIS event: its CBV 2.0 Event Hash ID's digest."""
    return "epcis-hash:sha-256:" + event_hash(event).removeprefix("ni:///sha-256;").removesuffix("?ver=CBV2.0")


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_doc(name: str) -> Doc:
    document: Doc = orjson.loads(sample(name))
    return document


def parsed(raw: bytes | Doc) -> list[Doc | Rejection]:
    return [canonical(result) for result in parse(raw if isinstance(raw, bytes) else orjson.dumps(raw), SOURCE)]


# The full canonical JSON of an EPCIS event, every default spelled out (EPCIS records what was observed: ACT).
tracking = partial(canonical_tracking, source=SOURCE, code_list="GS1-CBV-bizStep")


def object_event(**fields: Any) -> Doc:
    """A minimal valid ObjectEvent, fields overridable (None removes one)."""
    base: Doc = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T10:00:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "bizStep": "departing",
        "epcList": [CONTAINER],
        "readPoint": {"id": "urn:un:locode:DEHAM"},
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def only(document: Doc) -> Doc | Rejection:
    [result] = parsed(document)
    return result


# --- the samples -------------------------------------------------------------------------------------------------

RAIL = [("rail_waybill", "SMGS24081234"), ("container", "CSQU3054383")]


def journey_ids() -> list[str]:
    return [hub_id(event) for event in sample_doc("document_rail_journey.jsonld")["epcisBody"]["eventList"]]


def test_document_sample_maps_every_event() -> None:
    ids = journey_ids()
    loading: Doc = dict(
        occurred="2026-03-01T08:10:00Z",
        status="loaded",
        raw_code="loading",
        references=RAIL,
        location="CNCKG",
        container="CSQU3054383",
        remarks="disposition in_transit",
    )
    arrival: Doc = dict(
        occurred="2026-03-17T05:20:00Z", status="arrived", raw_code="arriving", references=RAIL, container="CSQU3054383"
    )
    assert parsed(sample("document_rail_journey.jsonld")) == [
        tracking(
            ids[0],
            occurred="2026-03-01T02:30:00Z",
            recorded="2026-03-01T02:31:05Z",
            status="received",
            raw_code="receiving",
            references=[
                ("rail_waybill", "SMGS24081234"),
                ("bill_of_lading", "CRB-26-000417"),
                ("container", "CSQU3054383"),
                ("sscc", "069012340000123456"),
                ("sgln", "6901234000108"),
            ],
            location="CNCKG",
            container="CSQU3054383",
            remarks="bizLocation urn:epc:id:sgln:6901234.00010.0; objects urn:epc:id:sscc:6901234.0000012345; "
            "disposition in_progress",
            site="6901234000108",
            packages=1,
            ssccs=["069012340000123456"],
        ),
        tracking(ids[1], recorded="2026-03-01T08:15:00Z", **loading),
        tracking(
            ids[2],
            occurred="2026-03-01T10:45:00Z",
            recorded="2026-03-01T10:47:30Z",
            status="departed",
            raw_code="departing",
            references=RAIL,
            location="CNCKG",
            container="CSQU3054383",
            remarks="disposition in_transit",
        ),
        tracking(ids[1], recorded="2026-03-02T07:55:00Z", **loading),
        tracking(ids[4], recorded="2026-03-17T05:25:00Z", location="DEDUI", **arrival),
        tracking(
            ids[4],
            recorded="2026-03-17T08:02:00Z",
            location="DEDUI",
            remarks=f"error declared (incorrect_data); corrected by {UUID}7",
            revised="2026-03-17T08:00:00Z",
            retracted=True,
            **arrival,
        ),
        tracking(ids[6], recorded="2026-03-17T08:02:00Z", location="PLMAL", **arrival),
    ]


def test_single_event_with_unknown_biz_step_keeps_its_name() -> None:
    assert parsed(sample("object_event_unknown_bizstep.json")) == [
        tracking(
            hub_id(sample_doc("object_event_unknown_bizstep.json")),
            occurred="2026-03-01T10:05:00Z",
            recorded="2026-03-01T10:05:00Z",
            status="unknown",
            raw_code="inspecting",
            references=[("cmr", "PL-2026-CMR-0093"), ("sscc", "059012340000000932"), ("sgln", "5901234000215")],
            remarks="readPoint urn:epc:id:sgln:5901234.00021.0; objects urn:epc:id:sscc:5901234.0000000093",
            site="5901234000215",
            packages=1,
            ssccs=["059012340000000932"],
        )
    ]


def test_malformed_events_are_rejected_one_by_one() -> None:
    event_id = "urn:uuid:0b9d3c1e-0000-4000-8000-00000000000"
    assert parsed(sample("malformed_events.jsonld")) == [
        Rejection("invalid_epcis", f"event 0 ({event_id}1): has no eventTime"),
        Rejection(
            "invalid_event",
            f"event 1 ({event_id}2): urn:epc:id:bic:CSQU3054384: container number 'CSQU3054384' fails its ISO 6346 "
            "check digit (expected 3)",
        ),
        tracking(  # an SSCC is a reference now: a booking may declare its packages' SSCCs
            hub_id(sample_doc("malformed_events.jsonld")["epcisBody"]["eventList"][2]),
            occurred="2026-03-11T00:30:00Z",
            recorded="2026-03-11T09:00:00Z",
            status="discharged",
            raw_code="unloading",
            references=[("sscc", "069012340000123456")],
            location="SGSIN",
            remarks="objects urn:epc:id:sscc:6901234.0000012345",
            packages=1,
            ssccs=["069012340000123456"],
        ),
        Rejection(
            "unsupported_event", f"event 3 ({event_id}4): a TransformationEvent does not report transport status"
        ),
        Rejection(
            "invalid_epcis", f"event 4 ({event_id}5): has no bizStep: without one the hub cannot tell what happened"
        ),
        tracking(
            hub_id(sample_doc("malformed_events.jsonld")["epcisBody"]["eventList"][5]),
            occurred="2026-03-11T02:00:00Z",
            recorded="2026-03-11T09:00:00Z",
            status="discharged",
            raw_code="unloading",
            references=[("container", "CAIU7022111")],
            location="SGSIN",
            container="CAIU7022111",
        ),
    ]


def test_truncated_document_is_one_rejection() -> None:
    assert parsed(sample("malformed_truncated.jsonld")) == [
        Rejection("invalid_json", "not valid UTF-8 JSON: unexpected end of data: line 57 column 59 (char 1789)")
    ]


# --- duplicates and corrections ----------------------------------------------------------------------------------


def test_the_same_event_sent_twice_gets_the_same_id() -> None:
    events = sample_doc("document_rail_journey.jsonld")["epcisBody"]["eventList"]
    first, resent = parse(orjson.dumps(events[1]), SOURCE), parse(orjson.dumps(events[3]), SOURCE)
    loading = journey_ids()[1]
    assert [e.event_id for e in first if isinstance(e, TrackingEvent)] == [loading]
    assert [e.event_id for e in resent if isinstance(e, TrackingEvent)] == [loading]


def test_event_hash_ignores_spelling_and_field_order_but_not_content() -> None:
    transactions = [{"type": "bol", "bizTransaction": "B1"}, {"type": "cmr", "bizTransaction": "C1"}]
    event = object_event(bizTransactionList=transactions)
    same = {
        **{key: event[key] for key in reversed(list(event))},
        "eventID": "urn:uuid:ignored",
        "recordTime": "2026-03-02T00:00:00Z",
        "eventTime": "2026-03-01T09:00:00Z",
        "bizStep": "urn:epcglobal:cbv:bizstep:departing",
        "bizTransactionList": [
            {"type": "urn:epcglobal:cbv:btt:cmr", "bizTransaction": " C1 "},
            {"type": "https://ref.gs1.org/cbv/BTT-bol", "bizTransaction": "B1"},
        ],
        "errorDeclaration": {"declarationTime": "2026-03-03T00:00:00Z"},
    }
    assert event_hash(same) == event_hash(event)
    moved = dict(event, readPoint={"id": "urn:un:locode:DEHAM", "extra": 1})
    later = dict(event, eventTime="2026-03-01T10:00:00.001+01:00")
    assert len({event_hash(event), event_hash(moved), event_hash(later)}) == 3


def test_an_event_and_its_hash_identical_copy_without_event_id_are_one_identity() -> None:
    # On 4c7e811 the event kept its eventID as id and the copy got the hub's own hash: two identities.
    with_id, without = only(object_event(eventID=UUID + "1")), only(object_event())
    assert isinstance(with_id, dict) and isinstance(without, dict)
    assert with_id["event_id"] == hub_id(object_event())
    assert with_id == without  # the same canonical event: the hub drops the second as a duplicate


def test_error_declaration_without_event_id_retracts_the_hash_identified_event() -> None:
    original = object_event()
    declaration = {"declarationTime": "2026-03-02T12:00:00+01:00", "reason": "did_not_occur"}
    declared = dict(original, errorDeclaration=declaration)
    first, retraction = only(original), only(declared)
    assert isinstance(first, dict) and isinstance(retraction, dict)
    assert retraction["event_id"] == first["event_id"] == hub_id(original)
    assert retraction != first  # a declaration, not a duplicate
    assert (retraction["retracted"], retraction["revised_at"]) == (True, "2026-03-02T11:00:00Z")
    assert retraction["payload"]["remarks"] == "error declared (did_not_occur)"


def test_error_declaration_needs_its_declaration_time() -> None:
    result = only(object_event(eventID="urn:uuid:1", errorDeclaration={"reason": "incorrect_data"}))
    assert result == Rejection(
        "invalid_epcis", "event 0 (urn:uuid:1): errorDeclaration.declarationTime must be an ISO 8601 timestamp string"
    )


def test_an_event_id_that_is_itself_an_event_hash_is_kept_in_the_remarks_only() -> None:
    given = "ni:///sha-256;df7bb3c352fef055578554f09f5e2aa41782150ced7bd0b8af24dd3ccb30ba69?ver=CBV2.0"
    result = only(object_event(eventID=given))
    assert isinstance(result, dict)
    assert result["event_id"] == hub_id(object_event())


# --- field mapping -----------------------------------------------------------------------------------------------


def test_every_spelling_of_a_biz_step_maps_the_same() -> None:
    spellings = [
        "arriving",
        "urn:epcglobal:cbv:bizstep:arriving",
        "https://ref.gs1.org/cbv/BizStep-arriving",
        "cbv:BizStep-arriving",
        "gs1:BizStep-arriving",
    ]
    for spelling in spellings:
        result = only(object_event(bizStep=spelling))
        assert isinstance(result, dict)
        assert (result["payload"]["status"], result["payload"]["raw_code"]) == ("arrived", "arriving"), spelling


def test_long_user_defined_biz_step_keeps_its_last_part_as_code_and_the_uri_in_remarks() -> None:
    step = "https://carrier.example.com/vocabulary/bizstep/customs_scan_completed"
    result = only(object_event(bizStep=step))
    assert isinstance(result, dict)
    assert (result["payload"]["status"], result["payload"]["raw_code"]) == ("unknown", "customs_scan_completed")
    assert result["payload"]["remarks"] == f"bizStep {step}"


def test_event_time_offset_comes_from_event_time_zone_offset_when_missing() -> None:
    result = only(object_event(eventTime="2026-03-01T10:00:00", eventTimeZoneOffset="-05:00"))
    assert isinstance(result, dict) and result["occurred_at"] == "2026-03-01T15:00:00Z"


def test_event_time_without_any_offset_is_rejected() -> None:
    assert only(object_event(eventTime="2026-03-01T10:00:00", eventTimeZoneOffset=None)) == Rejection(
        "invalid_epcis",
        "event 0: eventTime '2026-03-01T10:00:00' has no UTC offset and eventTimeZoneOffset does not give one "
        "(e.g. '+01:00')",
    )


def test_record_time_falls_back_to_the_document_creation_date() -> None:
    body = {"eventList": [object_event()]}
    document = {"type": "EPCISDocument", "creationDate": "2026-03-01T12:00:00Z", "epcisBody": body}
    [result] = parsed(document)
    assert isinstance(result, dict) and result["recorded_at"] == "2026-03-01T12:00:00Z"


def test_bare_locode_read_point_and_sgln_biz_location() -> None:
    result = only(object_event(readPoint={"id": "NLRTM"}, bizLocation={"id": "urn:epc:id:sgln:8712345.00001.0"}))
    assert isinstance(result, dict)
    assert result["payload"]["location"] == "NLRTM"
    assert result["payload"]["remarks"] == "bizLocation urn:epc:id:sgln:8712345.00001.0"


@pytest.mark.parametrize(
    ("objects", "packages"),
    [
        ({"epcList": [CONTAINER]}, None),  # no SSCC: no count
        ({"epcList": [CONTAINER, SSCC, SSCC, OTHER_SSCC]}, 2),  # distinct SSCCs
        # a pallet (parent SSCC) holding its cases is one package
        ({"type": "AggregationEvent", "action": "ADD", "epcList": None, "parentID": SSCC, "childEPCs": [OTHER_SSCC]}, 1),
        # a container (parent) holding two pallets: two packages
        ({"type": "AggregationEvent", "action": "ADD", "epcList": None, "parentID": CONTAINER, "childEPCs": [SSCC, OTHER_SSCC]}, 2),
    ],
)
def test_the_packages_an_event_names_by_sscc_are_counted(objects: Doc, packages: int | None) -> None:
    result = only(object_event(**objects))
    assert isinstance(result, dict)
    assert result["payload"].get("packages") == packages


def test_aggregation_into_a_container_names_the_container() -> None:
    aggregation = object_event(
        type="AggregationEvent",
        action="ADD",
        bizStep="loading",
        epcList=None,
        parentID=CONTAINER,
        childEPCs=["urn:epc:id:sscc:6901234.0000012345"],
    )
    result = only(aggregation)
    assert isinstance(result, dict)
    assert result["references"] == [
        {"kind": "container", "value": "CSQU3054383"},
        {"kind": "sscc", "value": "069012340000123456"},
    ]
    assert result["payload"]["remarks"] == "objects urn:epc:id:sscc:6901234.0000012345"


def test_business_transactions_sources_and_destinations_are_kept_as_references() -> None:
    # On 4c7e811 other transaction types, SGLN sites and the source and destination lists were remarks only.
    event = object_event(
        epcList=["urn:epc:id:sgtin:0614141.107346.2017"],
        bizTransactionList=[{"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:DO-7781"}],
        sourceList=[{"type": "location", "source": "urn:epc:id:sgln:0614141.00001.0"}],
        destinationList=[{"type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00002"}],
    )
    result = only(event)
    assert isinstance(result, dict)
    assert result["references"] == [
        {"kind": "business_transaction", "value": "DO-7781", "type": "desadv"},
        {"kind": "sgln", "value": "0614141000012"},
    ]
    assert result["payload"]["remarks"] == (
        "objects urn:epc:id:sgtin:0614141.107346.2017; transaction desadv urn:epcglobal:cbv:bt:0614141073467:DO-7781; "
        "source location urn:epc:id:sgln:0614141.00001.0; destination owning_party urn:epc:id:pgln:0614141.00002"
    )


def test_query_document_events_are_read() -> None:
    body = {"queryResults": {"resultsBody": {"eventList": [object_event()]}}}
    query = {"type": "EPCISQueryDocument", "epcisBody": body}
    [result] = parsed(query)
    assert isinstance(result, dict) and result["payload"]["status"] == "departed"


def test_empty_event_list_gives_no_results() -> None:
    assert parsed({"type": "EPCISDocument", "epcisBody": {"eventList": []}}) == []


def test_payloads_that_are_not_epcis_are_one_rejection() -> None:
    assert parsed(b"") == [Rejection("empty", "the payload is empty")]
    assert parsed(b"[1, 2]") == [Rejection("invalid_epcis", "an EPCIS payload is a JSON object, got list")]
    assert parsed({"type": "EPCISMasterDataDocument"}) == [
        Rejection(
            "invalid_epcis",
            "'type' is 'EPCISMasterDataDocument': expected an EPCISDocument or one EPCIS event (e.g. ObjectEvent)",
        )
    ]
    assert parsed({"type": "EPCISDocument", "epcisBody": {"eventList": {}}}) == [
        Rejection("invalid_epcis", "epcisBody.eventList must be a list of events")
    ]


def test_oversized_payload_is_refused_before_reading() -> None:
    assert parsed(b" " * (4 * 1024 * 1024 + 1)) == [
        Rejection("too_large", "document is 4194305 bytes; the limit is 4194304")
    ]


def test_absurdly_nested_event_is_rejected() -> None:
    nested: Any = "deep"
    for _ in range(40):
        nested = {"x": nested}
    assert only(object_event(extension=nested)) == Rejection("invalid_epcis", "event 0: nests deeper than 32 levels")


# --- never raises, never hangs -----------------------------------------------------------------------------------

VALID_SAMPLES = ["document_rail_journey.jsonld", "object_event_unknown_bizstep.json", "malformed_events.jsonld"]


def assert_well_formed(results: list[Any]) -> None:
    for tracked in well_formed_events(results):
        assert tracked.source == SOURCE and tracked.payload.leg is None
        assert tracked.payload.code_list == "GS1-CBV-bizStep"


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_well_formed(parse(raw, SOURCE))


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    """A sample with 1-4 mutations anywhere in its JSON: a key dropped, a value's type changed, a random value put or
    added; or, sometimes, its bytes cut short."""
    document = copy.deepcopy(sample_doc(draw(st.sampled_from(VALID_SAMPLES))))
    mutate(draw, document, draw(st.integers(1, 4)))
    raw = orjson.dumps(document)
    return raw[: draw(st.integers(0, len(raw)))] if draw(st.integers(0, 9)) == 0 else raw


@FUZZ
@given(mutated_documents())
def test_mutated_samples_never_raise(raw: bytes) -> None:
    results = parse(raw, SOURCE)
    assert_well_formed(results)
    for result in results:
        event(result.code if isinstance(result, Rejection) else "event")


def test_a_damaged_disposition_is_a_damage_incident_with_the_step_in_the_remarks() -> None:
    # On 4c7e811 the disposition went to the remarks only, so a damage reported in EPCIS opened no claim.
    result = only(object_event(bizStep="receiving", disposition="urn:epcglobal:cbv:disp:damaged"))
    assert isinstance(result, dict)
    assert {key: result["payload"][key] for key in ("status", "raw_code", "code_list", "remarks")} == {
        "status": "damaged",
        "raw_code": "damaged",
        "code_list": "GS1-CBV-disposition",
        "remarks": "bizStep receiving",
    }


def test_the_business_location_is_where_the_objects_are_after_the_event() -> None:
    result = only(object_event(bizStep="receiving", readPoint={"id": "urn:un:locode:SGSIN"}, bizLocation={"id": "MYJHB"}))
    assert isinstance(result, dict) and result["payload"]["location"] == "MYJHB"

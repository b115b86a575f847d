"""Transport documents like a DCSA eBL: issued once, transferred along a chain of holders, surrendered exactly once;
the journey's one through document; carriers' documents per leg; air waybill numbers checked at parse time."""

from __future__ import annotations

from itertools import permutations

import orjson
import pytest
from pydantic import ValidationError

from schemas.events import WaybillEvent
from schemas.record import DocumentRecord, Endorsement, Rejected
from streams.codec import Rejection, decode_event
from streams.documents import documents

from ..builders import MTO, Doc, booking_doc, example_journey_docs, hub_event, record_of, waybill_doc, when

THROUGH = "multimodal_transport_document"
CONTAINER = "CSQU3054383"  # ISO 6346 check digit 3
AWB = "020-12345675"  # serial 1234567 mod 7 = 5


def waybill(
    number: str,
    action: str = "issued",
    *,
    event_id: str,
    occurred: float,
    kind: str = THROUGH,
    holder: str | None = None,
    leg: int | None = None,
    source: str | None = None,
    containers: list[str] | None = None,
) -> Doc:
    """A waybill event: the MTO's through document unless `kind` and `leg` say a carrier's."""
    doc = waybill_doc(kind, number, leg=leg, event_id=event_id, source=source or (MTO if leg is None else None), occurred=occurred)
    doc["payload"]["action"] = action
    if holder is not None:
        doc["payload"]["holder"] = holder
    if containers is not None:
        doc["payload"]["containers"] = containers
    return doc


def lifecycle(docs: list[Doc], default_holder: str | None = "shipper.test") -> tuple[list[DocumentRecord], list[Rejected]]:
    """`documents` on the parsed events, checked to give the same answer for every arrival order."""
    events = [waybill_event(doc) for doc in docs]
    answers = {repr(documents(order, default_holder)) for order in permutations(events)}
    assert len(answers) == 1, "arrival order changed the outcome"
    return documents(events, default_holder)


def waybill_event(doc: Doc) -> WaybillEvent:
    event = hub_event(doc)
    assert isinstance(event, WaybillEvent)
    return event


# --- issued once ------------------------------------------------------------------------------------------------------


def test_second_issuance_of_the_same_number_is_refused_naming_the_first() -> None:
    [document], rejected = lifecycle(
        [waybill("MTD-1", event_id="issue-b", occurred=20), waybill("MTD-1", event_id="issue-a", occurred=10)]
    )
    assert (document.number, document.set_by, document.status) == ("MTD-1", f"{MTO}/issue-a", "issued")
    assert [r.event for r in rejected] == [f"{MTO}/issue-b"]
    assert f"{MTO}/issue-a" in rejected[0].reason
    assert "issued once" in rejected[0].reason


def test_same_number_under_another_kind_is_another_document() -> None:
    issued, rejected = lifecycle(
        [
            waybill("DOC-7", kind="sea_waybill", leg=3, event_id="swb", occurred=10),
            waybill("DOC-7", kind="bill_of_lading", leg=3, event_id="bl", occurred=20),
        ]
    )
    assert [(d.kind, d.number) for d in issued] == [("sea_waybill", "DOC-7"), ("bill_of_lading", "DOC-7")]
    assert rejected == []


def test_documents_are_listed_in_the_order_they_were_issued() -> None:
    issued, _ = lifecycle(
        [
            waybill("CMR-2", kind="cmr", leg=1, event_id="cmr-2", occurred=30),
            waybill("CMR-1", kind="cmr", leg=1, event_id="cmr-1", occurred=10),
        ]
    )
    assert [d.number for d in issued] == ["CMR-1", "CMR-2"]


# --- transfer ---------------------------------------------------------------------------------------------------------


def test_transfer_changes_the_holder_and_adds_an_endorsement() -> None:
    [document], rejected = lifecycle(
        [
            waybill("MTD-1", event_id="issue", occurred=10),
            waybill("MTD-1", "transferred", holder="bank.test", event_id="to-bank", occurred=20),
        ]
    )
    assert document.holder == "bank.test"
    assert document.endorsements == [Endorsement(holder="bank.test", at=when(20), set_by=f"{MTO}/to-bank")]
    assert document.status == "issued"
    assert rejected == []


def test_endorsements_follow_event_time_whatever_the_arrival_order() -> None:
    [document], _ = lifecycle(
        [
            waybill("MTD-1", "transferred", holder="consignee.test", event_id="to-consignee", occurred=30),
            waybill("MTD-1", "transferred", holder="bank.test", event_id="to-bank", occurred=20),
            waybill("MTD-1", event_id="issue", occurred=10),
        ]
    )
    assert [(e.holder, e.at) for e in document.endorsements] == [("bank.test", when(20)), ("consignee.test", when(30))]
    assert document.holder == "consignee.test"


def test_issuance_naming_a_holder_starts_the_chain_there() -> None:
    [document], _ = lifecycle([waybill("MTD-1", holder="bank.test", event_id="issue", occurred=10)])
    assert (document.holder, document.endorsements) == ("bank.test", [])


def test_transfer_before_issuance_is_refused() -> None:
    [document], rejected = lifecycle(
        [
            waybill("MTD-1", event_id="issue", occurred=10),
            waybill("MTD-1", "transferred", holder="bank.test", event_id="early", occurred=5),
        ]
    )
    assert (document.holder, document.endorsements) == ("shipper.test", [])
    assert [r.event for r in rejected] == [f"{MTO}/early"]
    assert "has not been issued" in rejected[0].reason


def test_transfer_of_a_document_never_issued_is_refused_and_lists_no_document() -> None:
    issued, rejected = lifecycle([waybill("MTD-9", "transferred", holder="bank.test", event_id="orphan", occurred=5)])
    assert issued == []
    assert [r.event for r in rejected] == [f"{MTO}/orphan"]


# --- surrender --------------------------------------------------------------------------------------------------------


def test_document_is_surrendered_exactly_once() -> None:
    [document], rejected = lifecycle(
        [
            waybill("MTD-1", event_id="issue", occurred=10),
            waybill("MTD-1", "surrendered", event_id="surrender-2", occurred=50),
            waybill("MTD-1", "surrendered", event_id="surrender-1", occurred=40),
        ]
    )
    assert (document.status, document.surrendered_by) == ("surrendered", f"{MTO}/surrender-1")
    assert [r.event for r in rejected] == [f"{MTO}/surrender-2"]
    assert f"{MTO}/surrender-1" in rejected[0].reason


def test_transfer_after_surrender_is_refused() -> None:
    [document], rejected = lifecycle(
        [
            waybill("MTD-1", event_id="issue", occurred=10),
            waybill("MTD-1", "surrendered", event_id="surrender", occurred=40),
            waybill("MTD-1", "transferred", holder="bank.test", event_id="late-transfer", occurred=45),
        ]
    )
    assert (document.holder, document.endorsements, document.status) == ("shipper.test", [], "surrendered")
    assert [r.event for r in rejected] == [f"{MTO}/late-transfer"]
    assert "after surrender" in rejected[0].reason


def test_surrender_before_issuance_is_refused() -> None:
    [document], rejected = lifecycle(
        [waybill("MTD-1", event_id="issue", occurred=10), waybill("MTD-1", "surrendered", event_id="early", occurred=5)]
    )
    assert document.status == "issued"
    assert [r.event for r in rejected] == [f"{MTO}/early"]


# --- the through document in the record -------------------------------------------------------------------------------


def test_through_document_is_held_by_the_shipper_until_transferred() -> None:
    record = record_of(booking_doc(), waybill("MTD-1", event_id="issue", occurred=2))
    assert record.through_document is not None
    assert (record.through_document.holder, record.through_document.issuer) == ("shipper.test", MTO)


def test_second_different_through_document_is_refused_because_the_journey_has_one() -> None:
    docs = [booking_doc(), waybill("MTD-2", event_id="issue-2", occurred=8), waybill("MTD-1", event_id="issue-1", occurred=2)]
    for record in (record_of(*docs), record_of(*reversed(docs))):
        assert record.through_document is not None and record.through_document.number == "MTD-1"
        assert [r.event for r in record.rejected] == [f"{MTO}/issue-2"]
        assert "MTD-1" in record.rejected[0].reason
        assert all(leg.documents == [] for leg in record.legs)


def test_through_document_refusals_reach_the_record() -> None:
    record = record_of(
        booking_doc(),
        waybill("MTD-1", event_id="issue", occurred=2),
        waybill("MTD-1", event_id="reissue", occurred=3),
        waybill("MTD-1", "surrendered", event_id="surrender", occurred=80),
        waybill("MTD-1", "surrendered", event_id="surrender-again", occurred=90),
    )
    assert record.through_document is not None and record.through_document.status == "surrendered"
    assert [r.event for r in record.rejected] == [f"{MTO}/reissue", f"{MTO}/surrender-again"]


def test_through_document_before_the_booking_takes_its_holder_from_the_booking_once_it_arrives() -> None:
    early = record_of(waybill("MTD-1", event_id="issue", occurred=2))
    assert early.through_document is not None and early.through_document.holder is None
    later = record_of(waybill("MTD-1", event_id="issue", occurred=2), booking_doc(occurred=5))
    assert later.through_document is not None and later.through_document.holder == "shipper.test"


def test_example_journey_through_document_is_transferred_then_surrendered() -> None:
    record = record_of(*example_journey_docs(), shipment_id="SHP-2026-000042")
    document = record.through_document
    assert document is not None
    assert (document.number, document.status) == ("WLC-MTD-260302-0042", "surrendered")
    assert document.surrendered_by == "mto.westcorridor/mtd-1-surrender"
    assert [e.set_by for e in document.endorsements] == ["mto.westcorridor/mtd-1-transfer"]
    assert document.holder == document.endorsements[-1].holder
    assert record.rejected == []


# --- carriers' documents per leg --------------------------------------------------------------------------------------


def test_carrier_documents_attach_to_their_leg_with_their_containers() -> None:
    record = record_of(
        booking_doc(),
        waybill("CMR-1", kind="cmr", leg=1, event_id="cmr", occurred=20, containers=[CONTAINER]),
        waybill("BL-3", kind="bill_of_lading", leg=3, event_id="bl", occurred=60, containers=[CONTAINER]),
    )
    assert [[(d.kind, d.number, d.containers) for d in leg.documents] for leg in record.legs] == [
        [("cmr", "CMR-1", [CONTAINER])],
        [],
        [("bill_of_lading", "BL-3", [CONTAINER])],
    ]
    assert record.through_document is None
    assert record.legs[2].documents[0].issuer == "carrier.sea"


def test_carrier_document_for_a_leg_the_booking_lacks_awaits_placement() -> None:
    record = record_of(booking_doc(), waybill("CMR-9", kind="cmr", leg=9, event_id="cmr-9", occurred=20, source="carrier.road"))
    assert all(leg.documents == [] for leg in record.legs)
    assert record.awaiting_placement == ["carrier.road/cmr-9"]


def test_refusals_of_a_carrier_document_reach_the_record() -> None:
    # A sea carrier's bill of lading is the classic surrender-once document: its refusals must be as visible as the
    # through document's, or a second surrender (a delivery against a spent B/L) goes unnoticed.
    record = record_of(
        booking_doc(),
        waybill("BL-3", kind="bill_of_lading", leg=3, event_id="bl", occurred=60),
        waybill("BL-3", kind="bill_of_lading", leg=3, event_id="bl-again", occurred=61),
        waybill("BL-3", "surrendered", kind="bill_of_lading", leg=3, event_id="surrender", occurred=90),
        waybill("BL-3", "surrendered", kind="bill_of_lading", leg=3, event_id="surrender-again", occurred=95),
    )
    [document] = record.legs[2].documents
    assert (document.set_by, document.surrendered_by) == ("carrier.sea/bl", "carrier.sea/surrender")
    assert [r.event for r in record.rejected] == ["carrier.sea/bl-again", "carrier.sea/surrender-again"]


# --- air waybill numbers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [AWB, "02012345675", "176-00000000"])
def test_air_waybill_number_with_a_valid_check_digit_parses(number: str) -> None:
    assert waybill_event(waybill(number, kind="air_waybill", leg=3, event_id="awb", occurred=60)).payload.document_kind == "air_waybill"


@pytest.mark.parametrize("number", ["020-12345670", "020-12345676", "020-1234567", "AB0-12345675"])
def test_air_waybill_number_failing_its_check_is_refused_at_parse_time(number: str) -> None:
    doc = waybill(number, kind="air_waybill", leg=3, event_id="awb", occurred=60)
    with pytest.raises(ValidationError):
        hub_event(doc)
    rejection = decode_event(orjson.dumps(doc))
    assert isinstance(rejection, Rejection) and rejection.code == "invalid_event"
    assert number in rejection.reason


def test_check_digit_applies_to_air_waybills_only() -> None:
    assert waybill_event(waybill("020-12345670", kind="sea_waybill", leg=3, event_id="swb", occurred=60)).payload.leg == 3


def test_air_waybill_written_with_or_without_its_hyphen_is_one_document() -> None:
    # IATA AWB numbers are written both ways; `schemas.identifiers._check_awb` normalises to "020-12345675", so a
    # carrier issuing "02012345675" and surrendering "020-12345675" is talking about one document.
    record = record_of(
        booking_doc(),
        waybill("02012345675", kind="air_waybill", leg=3, event_id="awb", occurred=60),
        waybill(AWB, "surrendered", kind="air_waybill", leg=3, event_id="awb-surrender", occurred=90),
    )
    [document] = record.legs[2].documents
    assert (document.number, document.status) == (AWB, "surrendered")

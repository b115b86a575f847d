"""The booking's lifecycle in the record: the MTO's decisions, amendments, and each carrier's answer for its leg."""

from __future__ import annotations

from schemas.record import ShipmentRecord
from streams.merge import fold

from ..builders import AUTHORITY, MTO, SHIPMENT, Doc, booking_doc, envelope, hub_event, record_of, tracking_doc, when


def decision(action: str, *, event_id: str, occurred: float, source: str = MTO, leg: int | None = None) -> Doc:
    """A `booking_status` event: the MTO's decision on the booking, or (with `leg`) a carrier's answer for its leg."""
    payload: Doc = {"action": action}
    if leg is not None:
        payload["leg"] = leg
    return envelope("booking_status", payload, event_id=event_id, source=source, occurred=occurred)


def in_both_orders(*docs: Doc) -> list[ShipmentRecord]:
    forward, backward = record_of(*docs), record_of(*reversed(docs))
    assert forward == backward
    return [forward, backward]


# --- the MTO's decision -----------------------------------------------------------------------------------------------


def test_booking_is_requested_until_the_mto_confirms_it() -> None:
    requested = record_of(booking_doc())
    assert (requested.booking_status, requested.booking_status_set_by, requested.status) == ("requested", None, "booked")

    for record in in_both_orders(booking_doc(), decision("confirmed", event_id="ok", occurred=1)):
        assert (record.booking_status, record.booking_status_set_by) == ("confirmed", f"{MTO}/ok")
        assert record.status == "booked"
        assert record.rejected == []


def test_the_mtos_latest_decision_wins_whatever_the_arrival_order() -> None:
    confirmed_then_rejected = [decision("confirmed", event_id="d1", occurred=1), decision("rejected", event_id="d2", occurred=2)]
    for record in in_both_orders(booking_doc(), *confirmed_then_rejected):
        assert (record.booking_status, record.booking_status_set_by, record.status) == ("rejected", f"{MTO}/d2", "rejected")

    rejected_then_confirmed = [decision("rejected", event_id="d1", occurred=1), decision("confirmed", event_id="d2", occurred=2)]
    for record in in_both_orders(booking_doc(), *rejected_then_confirmed):
        assert (record.booking_status, record.booking_status_set_by, record.status) == ("confirmed", f"{MTO}/d2", "booked")


def test_cancellation_is_final_even_when_a_confirmation_comes_later_in_time() -> None:
    cancel = decision("cancelled", event_id="cancel", occurred=5)
    confirm = decision("confirmed", event_id="confirm", occurred=9)
    for record in in_both_orders(booking_doc(), cancel, confirm):
        assert (record.booking_status, record.booking_status_set_by) == ("cancelled", f"{MTO}/cancel")
        assert record.status == "cancelled"


def test_cancellation_outranks_progress_in_the_shipment_status() -> None:
    record = record_of(booking_doc(), tracking_doc("departed", leg=1, occurred=3), decision("cancelled", event_id="cancel", occurred=5))
    assert record.legs[0].status == "departed"
    assert record.status == "cancelled"


def test_decision_from_anyone_but_the_mto_is_refused_and_changes_nothing() -> None:
    forged = [
        decision("cancelled", event_id="fake-cancel", occurred=2, source="carrier.road"),
        decision("confirmed", event_id="fake-confirm", occurred=3, source="shipper.test"),
    ]
    for record in in_both_orders(booking_doc(), decision("rejected", event_id="real", occurred=1), *forged):
        assert (record.booking_status, record.booking_status_set_by, record.status) == ("rejected", f"{MTO}/real", "rejected")
        assert [r.event for r in record.rejected] == ["carrier.road/fake-cancel", "shipper.test/fake-confirm"]
        assert all(MTO in r.reason for r in record.rejected)


# --- amendment --------------------------------------------------------------------------------------------------------


def test_amendment_replaces_the_booking_without_a_second_shipment_and_records_when() -> None:
    amended = booking_doc(revised=10, recorded=10)
    amended["payload"]["cargo"]["pieces"] = 6
    for docs in ([booking_doc(), amended], [amended, booking_doc()]):
        records = fold((hub_event(doc) for doc in docs), AUTHORITY)
        assert list(records) == [SHIPMENT]
        record = records[SHIPMENT]
        assert record.booking is not None and record.booking.cargo.pieces == 6
        assert (record.booking_set_by, record.booking_revised_at) == (f"{MTO}/bkg-1", when(10))
        assert (record.version, record.events_applied) == (2, 1)
    assert record_of(booking_doc()).booking_revised_at is None


def test_amendment_keeps_the_mtos_decision() -> None:
    amended = booking_doc(revised=10)
    amended["payload"]["cargo"]["pieces"] = 6
    record = record_of(booking_doc(), decision("confirmed", event_id="ok", occurred=1), amended)
    assert (record.booking_status, record.booking_status_set_by) == ("confirmed", f"{MTO}/ok")


# --- each carrier's answer for its leg --------------------------------------------------------------------------------


def test_carrier_accepts_or_declines_its_own_leg() -> None:
    record = record_of(
        booking_doc(),
        decision("leg_accepted", event_id="yes-1", occurred=2, source="carrier.road", leg=1),
        decision("leg_declined", event_id="no-2", occurred=2, source="carrier.rail", leg=2),
    )
    responses = [(leg.carrier_response, leg.carrier_response_set_by) for leg in record.legs]
    assert responses == [("accepted", "carrier.road/yes-1"), ("declined", "carrier.rail/no-2"), ("pending", None)]
    assert record.rejected == []
    assert record.booking_status == "requested"


def test_carriers_latest_answer_for_its_leg_counts_whatever_the_arrival_order() -> None:
    accept = decision("leg_accepted", event_id="yes", occurred=2, source="carrier.sea", leg=3)
    decline = decision("leg_declined", event_id="no", occurred=4, source="carrier.sea", leg=3)
    for record in in_both_orders(booking_doc(), accept, decline):
        assert (record.legs[2].carrier_response, record.legs[2].carrier_response_set_by) == ("declined", "carrier.sea/no")


def test_another_carrier_answering_for_a_leg_is_refused_and_changes_nothing() -> None:
    for record in in_both_orders(
        booking_doc(),
        decision("leg_declined", event_id="own", occurred=2, source="carrier.rail", leg=2),
        decision("leg_accepted", event_id="meddle", occurred=3, source="carrier.road", leg=2),
    ):
        assert (record.legs[1].carrier_response, record.legs[1].carrier_response_set_by) == ("declined", "carrier.rail/own")
        assert record.legs[0].carrier_response == "pending"
        assert [(r.event, r.reason) for r in record.rejected] == [
            ("carrier.road/meddle", "leg 2 is assigned to carrier.rail, not carrier.road")
        ]


def test_answer_for_a_leg_the_booking_lacks_is_refused() -> None:
    record = record_of(booking_doc(), decision("leg_accepted", event_id="yes-7", occurred=2, source="carrier.sea", leg=7))
    assert [leg.carrier_response for leg in record.legs] == ["pending"] * 3
    assert [(r.event, r.reason) for r in record.rejected] == [("carrier.sea/yes-7", "the booking has no leg 7")]


def test_leg_answer_does_not_decide_the_booking() -> None:
    record = record_of(booking_doc(), decision("leg_declined", event_id="no-1", occurred=2, source="carrier.road", leg=1))
    assert (record.booking_status, record.status) == ("requested", "booked")

"""A handover out of a leg advances that leg, as the carrier's own report would: to handed_over, or to delivered when
it goes to the consignee. The leg table, the custody and the shipment status never disagree, in any order."""

from __future__ import annotations

from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.record import ShipmentRecord
from schemas.status import PRECEDENCE
from streams.merge import HANDOVER_CODE_LIST

from ..builders import Doc, booking_doc, record_of, tracking_doc
from .test_custody import PICKUP, RAIL_TO_SEA, ROAD_TO_RAIL, handover_doc

TO_CONSIGNEE = handover_doc(3, None, occurred=90)


def record_from(docs: list[Doc]) -> ShipmentRecord:
    return record_of(*docs)


def test_handovers_advance_the_legs_they_leave_where_only_arrivals_were_reported() -> None:
    # On 4c7e811 the legs stayed "arrived" while the record was delivered and the custody showed every handover.
    arrivals = [tracking_doc("arrived", leg=leg, occurred=20 * leg + 5) for leg in (1, 2, 3)]
    record = record_from([booking_doc(), *arrivals, PICKUP, ROAD_TO_RAIL, RAIL_TO_SEA, TO_CONSIGNEE])
    assert record.status == "delivered"
    assert [leg.status for leg in record.legs] == ["handed_over", "handed_over", "delivered"]
    delivered = record.legs[2].milestones[-1]
    assert (delivered.status, delivered.code_list, delivered.location) == ("delivered", HANDOVER_CODE_LIST, "SGSIN")
    bare = record_from([booking_doc(), TO_CONSIGNEE])
    assert bare.legs[2].arrival.actual == delivered.at  # a delivery is an arrival, as a last mile's report is


def test_a_later_departure_report_does_not_undo_the_handover() -> None:
    record = record_from([booking_doc(), ROAD_TO_RAIL, tracking_doc("departed", leg=1, occurred=40)])
    assert record.legs[0].status == "handed_over"


def test_the_carriers_own_report_at_the_same_instant_keeps_its_milestone() -> None:
    report = tracking_doc("delivered", leg=3, occurred=90, event_id="pod-3")
    record = record_from([booking_doc(), report, TO_CONSIGNEE])
    assert record.legs[2].status_set_by == "carrier.sea/pod-3"


EVENTS = [booking_doc(), PICKUP, ROAD_TO_RAIL, RAIL_TO_SEA, TO_CONSIGNEE] + [
    tracking_doc(status, leg=leg, occurred=20 * leg + offset)
    for leg in (1, 2, 3)
    for status, offset in (("departed", 2), ("arrived", 8))
]


@settings(max_examples=60, deadline=None)
@given(chosen=st.lists(st.sampled_from(range(len(EVENTS))), max_size=14), shuffle=st.randoms(use_true_random=False))
def test_legs_custody_and_status_agree_whatever_arrives_in_any_order(chosen: list[int], shuffle: Random) -> None:
    docs = [EVENTS[0]] + [EVENTS[i] for i in chosen]
    record = record_from(docs)
    again = list(docs)
    shuffle.shuffle(again)
    assert record_from(again) == record
    for handover in record.handovers:
        if handover.from_leg is not None:
            reached = record.legs[handover.from_leg - 1].status
            floor = "delivered" if handover.to_leg is None else "handed_over"
            assert PRECEDENCE[reached] >= PRECEDENCE[floor], (handover, reached)
    assert (record.status == "delivered") == (record.legs[-1].status == "delivered")

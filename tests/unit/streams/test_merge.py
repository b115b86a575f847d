"""The merge: behaviour of apply / fold / project on hand-written timelines and on the example journey."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from schemas.base import MoneyTotal
from schemas.record import ShipmentRecord
from streams.codec import decode_event
from streams.merge import MisroutedEvent, ShipmentState, apply, apply_all, fingerprint, fold, project

from ..builders import (
    AUTHORITY,
    SHIPMENT,
    Doc,
    at,
    booking_doc,
    claim_doc,
    example_journey_docs,
    example_journey_lines,
    hub_event,
    policy_doc,
    record_of,
    settlement_doc,
    state_of,
    tracking_doc,
    waybill_doc,
    when,
)


def both_orders(first: Doc, second: Doc, *rest: Doc) -> tuple[ShipmentRecord, ShipmentRecord]:
    return record_of(*rest, first, second), record_of(second, first, *rest)


# --- progress and precedence ----------------------------------------------------------------------------------------


def test_late_departure_does_not_undo_delivery() -> None:
    delivered = tracking_doc("delivered", leg=3, occurred=100)
    departed = tracking_doc("departed", leg=3, occurred=80, recorded=120)
    for record in both_orders(delivered, departed, booking_doc()):
        leg = record.legs[2]
        assert leg.status == "delivered"
        assert leg.status_set_by == "carrier.sea/trk-3-delivered-act"
        assert leg.departure.actual == when(80)
        assert record.status == "delivered"


def test_leg_status_is_the_furthest_actual_milestone_whatever_the_report_order() -> None:
    reports = [tracking_doc(s, leg=2, occurred=10 + i) for i, s in enumerate(["received", "loaded", "departed", "arrived"])]
    forward = record_of(booking_doc(), *reports)
    backward = record_of(*reversed(reports), booking_doc())
    assert forward == backward
    assert forward.legs[1].status == "arrived"
    assert forward.status == "in_transit"


def test_estimated_arrival_never_fills_the_actual_arrival() -> None:
    record = record_of(booking_doc(), tracking_doc("arrived", leg=3, classifier="EST", occurred=90, recorded=50))
    leg = record.legs[2]
    assert leg.arrival.estimated == when(90)
    assert leg.arrival.actual is None
    assert leg.status == "planned"
    assert record.status == "booked"
    assert record.current_location is None


def test_estimated_delivery_does_not_deliver_the_shipment() -> None:
    record = record_of(
        booking_doc(),
        tracking_doc("delivered", leg=3, classifier="EST", occurred=90, recorded=50),
        tracking_doc("departed", leg=3, occurred=60),
    )
    assert record.legs[2].status == "departed"
    assert record.status == "in_transit"


def test_planned_milestone_never_sets_an_actual_and_overrides_the_booking_plan() -> None:
    record = record_of(booking_doc(), tracking_doc("departed", leg=1, classifier="PLN", occurred=30, recorded=5))
    leg = record.legs[0]
    assert leg.status == "planned"
    assert leg.departure.actual is None
    assert leg.departure.planned == when(30)
    assert record.legs[1].departure.planned == when(48)  # from the booking


def test_first_actual_report_of_a_milestone_is_when_it_happened() -> None:
    first = tracking_doc("departed", leg=1, occurred=25, event_id="dep-a")
    again = tracking_doc("departed", leg=1, occurred=27, event_id="dep-b")
    for record in both_orders(first, again, booking_doc()):
        assert record.legs[0].departure.actual == when(25)
        assert record.legs[0].status_set_by == "carrier.road/dep-a"


def test_newest_estimate_is_the_best_informed_one() -> None:
    early = tracking_doc("arrived", leg=3, classifier="EST", occurred=90, recorded=10, event_id="eta-1")
    late = tracking_doc("arrived", leg=3, classifier="EST", occurred=95, recorded=40, event_id="eta-2")
    for record in both_orders(early, late, booking_doc()):
        assert record.legs[2].arrival.estimated == when(95)


def test_last_mile_reporting_only_delivery_gives_the_actual_arrival() -> None:
    record = record_of(booking_doc(), tracking_doc("delivered", leg=3, occurred=100))
    assert record.legs[2].arrival.actual == when(100)


def test_incident_never_moves_a_leg_and_is_listed_as_an_exception() -> None:
    record = record_of(
        booking_doc(), tracking_doc("departed", leg=2, occurred=50), tracking_doc("damaged", leg=2, occurred=60)
    )
    leg = record.legs[1]
    assert leg.status == "departed"
    assert [m.status for m in leg.exceptions] == ["damaged"]
    assert all(m.status != "damaged" for m in leg.milestones)


def test_unmapped_carrier_status_is_kept_beside_the_leg_and_moves_nothing() -> None:
    record = record_of(booking_doc(), tracking_doc("unknown", leg=1, occurred=20))
    assert record.legs[0].status == "planned"
    assert [m.raw_code for m in record.legs[0].unmapped] == ["UNKNOWN"]


def test_report_without_location_takes_the_planned_place_of_its_milestone() -> None:
    record = record_of(
        booking_doc(), tracking_doc("departed", leg=2, occurred=50), tracking_doc("arrived", leg=2, occurred=70)
    )
    locations = {m.status: m.location for m in record.legs[1].milestones}
    assert locations == {"departed": "CNCKG", "arrived": "CNQZH"}
    assert record.current_location == "CNQZH"


def test_current_location_is_the_furthest_actual_milestone_along_the_journey() -> None:
    record = record_of(
        booking_doc(),
        tracking_doc("arrived", leg=1, occurred=40, location="CNCKG"),
        tracking_doc("departed", leg=2, occurred=50, location="CNCKG"),
        tracking_doc("arrived", leg=1, occurred=60, location="CNCKG", event_id="late-dup", recorded=90),
        tracking_doc("arrived", leg=2, classifier="EST", occurred=70, location="CNQZH"),
    )
    assert record.current_location == "CNCKG"
    assert record.location_set_by == "carrier.rail/trk-2-departed-act"


# --- revisions and retractions --------------------------------------------------------------------------------------


def test_revised_copy_replaces_the_earlier_one_whatever_the_order() -> None:
    original = tracking_doc("arrived", leg=3, classifier="EST", occurred=90, recorded=30, event_id="eta")
    revised = tracking_doc("arrived", leg=3, classifier="EST", occurred=84, recorded=60, revised=60, event_id="eta")
    for record in both_orders(original, revised, booking_doc()):
        assert record.legs[2].arrival.estimated == when(84)
        assert record.version == 3
        assert record.events_applied == 2


def test_older_revision_arriving_last_does_not_replace_a_newer_one() -> None:
    first = tracking_doc("arrived", leg=3, classifier="EST", occurred=90, event_id="eta")
    second = tracking_doc("arrived", leg=3, classifier="EST", occurred=88, revised=40, event_id="eta")
    third = tracking_doc("arrived", leg=3, classifier="EST", occurred=86, revised=50, event_id="eta")
    assert record_of(booking_doc(), third, second, first).legs[2].arrival.estimated == when(86)
    assert record_of(booking_doc(), first, third, second).legs[2].arrival.estimated == when(86)


def test_retraction_removes_the_event_whatever_the_order() -> None:
    wrong = tracking_doc("arrived", leg=3, occurred=70, event_id="arr-wrong")
    retraction = tracking_doc("arrived", leg=3, occurred=70, recorded=72, revised=72, retracted=True, event_id="arr-wrong")
    departed = tracking_doc("departed", leg=3, occurred=60)
    for record in both_orders(wrong, retraction, booking_doc(), departed):
        leg = record.legs[2]
        assert leg.status == "departed"
        assert leg.arrival.actual is None
        assert record.retracted_events == 1
        assert record.events_applied == 2
        assert record.version == 4
        assert "carrier.sea/arr-wrong" not in record.model_dump_json()


def test_retraction_without_revision_time_still_wins_over_the_plain_copy() -> None:
    wrong = tracking_doc("delivered", leg=3, occurred=70, event_id="dlv")
    retraction = tracking_doc("delivered", leg=3, occurred=70, retracted=True, event_id="dlv")
    for record in both_orders(wrong, retraction, booking_doc()):
        assert record.status == "booked"
        assert record.retracted_events == 1


def test_retracted_booking_returns_the_shipment_to_awaiting_booking() -> None:
    record = record_of(
        booking_doc(), booking_doc(retracted=True, revised=5), tracking_doc("departed", leg=1, occurred=20)
    )
    assert record.status == "awaiting_booking"
    assert record.booking is None
    assert record.awaiting_placement == ["carrier.road/trk-1-departed-act"]


def test_revised_booking_replaces_the_plan_the_legs_follow() -> None:
    shorter = booking_doc([(3, "carrier.road", "CNCTU", "CNCKG")], revised=10)
    record = record_of(booking_doc(), shorter, tracking_doc("arrived", leg=2, occurred=70))
    assert [leg.sequence for leg in record.legs] == [1]
    assert record.awaiting_placement == ["carrier.rail/trk-2-arrived-act"]


# --- placement ------------------------------------------------------------------------------------------------------


def test_tracking_before_the_booking_is_kept_and_placed_when_the_booking_arrives() -> None:
    departed = hub_event(tracking_doc("departed", leg=1, occurred=20))
    state = apply(ShipmentState(SHIPMENT), departed)
    waiting = project(state, AUTHORITY)
    assert waiting.status == "awaiting_booking"
    assert waiting.legs == []
    assert waiting.awaiting_placement == [departed.key]
    assert waiting.events_applied == 1

    placed = project(apply(state, hub_event(booking_doc(occurred=30))), AUTHORITY)
    assert placed.status == "in_transit"
    assert placed.awaiting_placement == []
    assert placed.legs[0].status == "departed"
    assert placed.legs[0].departure.actual == when(20)


def test_shipment_level_events_before_the_booking_are_not_awaiting_placement() -> None:
    record = record_of(
        policy_doc(), waybill_doc("multimodal_transport_document", "MTD-1", source="mto.test", occurred=2)
    )
    assert record.status == "awaiting_booking"
    assert record.awaiting_placement == []
    assert record.through_document is not None and record.through_document.number == "MTD-1"
    assert record.insurance.policy is not None


def test_event_for_a_leg_the_booking_lacks_stays_visible_awaiting_placement() -> None:
    stray = tracking_doc("arrived", leg=7, occurred=50, source="carrier.sea")
    record = record_of(booking_doc(), stray, tracking_doc("departed", leg=3, occurred=40))
    assert record.awaiting_placement == ["carrier.sea/trk-7-arrived-act"]
    assert record.legs[2].status == "departed"
    assert record.events_applied == 3


def test_report_without_leg_goes_to_the_only_leg_its_carrier_carries() -> None:
    record = record_of(booking_doc(), tracking_doc("departed", leg=None, source="carrier.rail", occurred=50))
    assert record.legs[1].status == "departed"
    assert record.awaiting_placement == []


def test_report_without_leg_from_a_carrier_of_several_legs_awaits_placement() -> None:
    legs = [(3, "carrier.road", "CNCTU", "CNCKG"), (3, "carrier.road", "CNCKG", "CNQZH")]
    record = record_of(booking_doc(legs), tracking_doc("departed", leg=None, source="carrier.road", occurred=50))
    assert [leg.status for leg in record.legs] == ["planned", "planned"]
    assert record.awaiting_placement == ["carrier.road/trk-none-departed-act"]


# --- documents, charges, insurance ----------------------------------------------------------------------------------


def test_documents_attach_to_their_leg_and_the_through_document_to_the_shipment() -> None:
    record = record_of(
        booking_doc(),
        waybill_doc("multimodal_transport_document", "MTD-1", source="mto.test"),
        waybill_doc("cmr", "CMR-1", leg=1),
        waybill_doc("sea_waybill", "SWB-3", leg=3),
    )
    assert record.through_document is not None and record.through_document.number == "MTD-1"
    assert [[d.number for d in leg.documents] for leg in record.legs] == [["CMR-1"], [], ["SWB-3"]]


def test_document_issued_twice_is_listed_once_by_its_first_issue() -> None:
    record = record_of(
        booking_doc(),
        waybill_doc("sea_waybill", "SWB-3", leg=3, event_id="swb-late", occurred=30),
        waybill_doc("sea_waybill", "SWB-3", leg=3, event_id="swb-early", occurred=20),
    )
    assert [d.set_by for d in record.legs[2].documents] == ["carrier.sea/swb-early"]


def test_charges_total_per_currency_with_decimal_exactness() -> None:
    record = record_of(
        booking_doc(),
        settlement_doc([("FRT", "0.10", "USD"), ("BAF", "0.20", "USD"), ("THC", "650.5", "CNY")], leg=3, event_id="inv-a"),
        settlement_doc([("FRT", "3200.00", "CNY"), ("DSC", "-0.30", "USD")], leg=1, event_id="inv-b"),
        settlement_doc([("TOLL", 1, "EUR")], leg=2, event_id="inv-c"),
    )
    assert record.charges_total == [
        MoneyTotal(amount=Decimal("3850.50"), currency="CNY"),
        MoneyTotal(amount=Decimal("1"), currency="EUR"),
        MoneyTotal(amount=Decimal("0.00"), currency="USD"),
    ]
    assert [str(m.amount) for m in record.charges_total] == ["3850.50", "1", "0.00"]
    assert [len(leg.charges) for leg in record.legs] == [2, 1, 3]


def test_journey_charges_from_the_mto_count_in_the_total_and_do_not_await_placement() -> None:
    # SettlementPayload: "a carrier's charges for one leg (or the MTO's for the journey when `leg` is absent)".
    record = record_of(
        booking_doc(),
        settlement_doc([("FRT", "100.00", "USD")], leg=1, event_id="inv-road"),
        settlement_doc([("MTO", "900.00", "USD")], leg=None, source="mto.test", event_id="inv-mto"),
    )
    assert record.awaiting_placement == []
    assert record.charges_total == [MoneyTotal(amount=Decimal("1000.00"), currency="USD")]
    assert [charge.code for charge in record.journey_charges] == ["MTO"]


def test_charges_total_beyond_the_limit_of_one_line_does_not_break_the_projection() -> None:
    # Each line is a valid Money (at most 14 whole digits); their sum has 15. The fold must not raise on valid events.
    record = record_of(
        booking_doc(),
        settlement_doc([("FRT", "60000000000000", "VND"), ("FRT", "60000000000000", "VND")], leg=1),
    )
    assert [m.amount for m in record.charges_total] == [Decimal("120000000000000")]


def test_the_latest_policy_covers_every_leg_and_updates_for_claims_the_hub_never_opened_stay_visible() -> None:
    record = record_of(
        booking_doc(),
        policy_doc(occurred=1),
        claim_doc("CLM-1", "opened", event_id="c1", occurred=50),
        claim_doc("CLM-1", "assessed", event_id="c2", occurred=60, amount="1200.00"),
    )
    assert record.insurance.policy is not None and record.insurance.policy.policy_number == "POL-2026-0001"
    assert {leg.cover for leg in record.legs} == {"POL-2026-0001"}
    assert record.claims == []  # no exception was reported, so the hub opened no claim
    assert record.insurance.unmatched_updates == ["insurer.test/c1", "insurer.test/c2"]


# --- idempotence, identity, routing ---------------------------------------------------------------------------------


def test_reapplying_an_event_returns_the_identical_state() -> None:
    state = state_of(booking_doc(), tracking_doc("departed", leg=1, occurred=20))
    event = hub_event(tracking_doc("departed", leg=1, occurred=20))
    assert apply(state, event) is state


def test_redelivered_copy_with_the_same_instant_in_another_offset_is_the_same_copy() -> None:
    doc = tracking_doc("departed", leg=1, occurred=20)
    state = state_of(booking_doc(), doc)
    redelivered = dict(doc, occurred_at="2026-03-02T04:00:00+08:00")  # == at(20)
    assert apply(state, hub_event(redelivered)) is state


def test_duplicates_do_not_count_as_versions() -> None:
    doc = tracking_doc("departed", leg=1, occurred=20)
    record = record_of(booking_doc(), doc, doc, doc)
    assert record.version == 2
    assert record.events_applied == 2


def test_version_counts_every_distinct_copy_including_losing_ones() -> None:
    record = record_of(
        tracking_doc("arrived", leg=3, classifier="EST", occurred=90, revised=20, event_id="eta"),
        tracking_doc("arrived", leg=3, classifier="EST", occurred=99, revised=10, event_id="eta"),
    )
    assert record.version == 2
    assert record.events_applied == 1


def test_fingerprint_differs_for_different_content_and_ignores_key_order() -> None:
    doc = tracking_doc("departed", leg=1, occurred=20)
    reordered = dict(reversed(list(doc.items())))
    assert fingerprint(hub_event(doc)) == fingerprint(hub_event(reordered))
    assert fingerprint(hub_event(doc)) != fingerprint(hub_event(dict(doc, recorded_at=at(21))))


def test_event_for_another_shipment_raises_misrouted_event() -> None:
    state = state_of(booking_doc())
    with pytest.raises(MisroutedEvent, match="SHP-OTHER"):
        apply(state, hub_event(tracking_doc("departed", shipment_id="SHP-OTHER")))


def test_event_addressed_only_by_reference_cannot_be_merged_before_resolution() -> None:
    doc = tracking_doc("departed", shipment_id=None)
    doc["references"] = [{"kind": "container", "value": "CSQU3054383"}]
    with pytest.raises(MisroutedEvent):
        apply(ShipmentState(SHIPMENT), hub_event(doc))
    with pytest.raises(ValueError, match="names no shipment_id"):
        fold([hub_event(doc)], AUTHORITY)


def test_fold_gives_one_record_per_shipment() -> None:
    records = fold(
        [
            hub_event(booking_doc()),
            hub_event(booking_doc(shipment_id="SHP-TEST-0002")),
            hub_event(tracking_doc("departed", leg=1, occurred=20, shipment_id="SHP-TEST-0002")),
        ],
        AUTHORITY,
    )
    assert list(records) == [SHIPMENT, "SHP-TEST-0002"]
    assert records[SHIPMENT].status == "booked"
    assert records["SHP-TEST-0002"].status == "in_transit"


def test_updated_at_is_the_latest_recording_of_a_live_event() -> None:
    record = record_of(
        booking_doc(),
        tracking_doc("departed", leg=1, occurred=20, recorded=21),
        tracking_doc("arrived", leg=1, occurred=30, recorded=90, event_id="x"),
        tracking_doc("arrived", leg=1, occurred=30, recorded=95, revised=95, retracted=True, event_id="x"),
    )
    assert record.updated_at == when(21)


# --- the example journey --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journey() -> ShipmentRecord:
    events = [decode_event(line) for line in example_journey_lines()]
    records = fold(events, AUTHORITY)  # type: ignore[arg-type]
    assert list(records) == ["SHP-2026-000042"]
    return records["SHP-2026-000042"]


def test_example_journey_lines_all_decode_to_events() -> None:
    for line in example_journey_lines():
        assert not hasattr(decode_event(line), "reason")


def test_example_journey_is_delivered_at_johor_bahru(journey: ShipmentRecord) -> None:
    assert journey.status == "delivered"
    assert journey.current_location == "MYJHB"
    assert journey.location_set_by == "carrier.my-haulage/t4-dlv"
    assert journey.responsible_operator == "mto.westcorridor"
    assert journey.booking_set_by == "mto.westcorridor/bkg-1"


def test_example_journey_has_four_legs_each_with_its_document(journey: ShipmentRecord) -> None:
    assert [(leg.sequence, leg.origin, leg.destination) for leg in journey.legs] == [
        (1, "CNCTU", "CNCKG"),
        (2, "CNCKG", "CNQZH"),
        (3, "CNQZH", "SGSIN"),
        (4, "SGSIN", "MYJHB"),
    ]
    assert [[(d.kind, d.number) for d in leg.documents] for leg in journey.legs] == [
        [("road_consignment_note", "SCR-2026-8812")],
        [("rail_waybill", "CR-CQ-77120551")],
        [("sea_waybill", "OCLN260300917")],
        [("road_consignment_note", "MYH-JB-31077")],
    ]
    assert [leg.status for leg in journey.legs] == ["handed_over", "handed_over", "handed_over", "delivered"]


def test_example_journey_has_its_through_document_and_policy(journey: ShipmentRecord) -> None:
    assert journey.through_document is not None
    assert (journey.through_document.kind, journey.through_document.number) == (
        "multimodal_transport_document",
        "WLC-MTD-260302-0042",
    )
    assert journey.insurance.policy is not None
    assert journey.insurance.policy.policy_number == "PICC-CG-2026-55821"
    assert journey.claims == []
    assert [leg.cover for leg in journey.legs] == ["PICC-CG-2026-55821"] * 4  # every leg inherits the one policy


def test_example_journey_counts_copies_events_and_its_one_retraction(journey: ShipmentRecord) -> None:
    assert journey.version == 52  # every line is a distinct copy
    assert journey.retracted_events == 1  # t3-arr-wrong
    assert journey.events_applied == 49  # 50 identities (two revised), one retracted
    assert journey.awaiting_placement == []
    assert journey.updated_at == datetime(2026, 3, 12, 22, 3, tzinfo=timezone.utc)


def test_example_journey_takes_the_revised_estimate_and_ignores_the_retracted_arrival(journey: ShipmentRecord) -> None:
    ocean = journey.legs[2]
    assert ocean.arrival.estimated == datetime(2026, 3, 11, 11, 0, tzinfo=timezone.utc)  # the revision, not 15:00
    assert ocean.arrival.actual == datetime(2026, 3, 11, 13, 0, tzinfo=timezone.utc)  # not the retracted 10th
    assert ocean.arrival.planned == datetime(2026, 3, 11, 15, 0, tzinfo=timezone.utc)
    assert "t3-arr-wrong" not in journey.model_dump_json()


def test_example_journey_keeps_plan_estimate_and_actual_apart(journey: ShipmentRecord) -> None:
    rail = journey.legs[1]
    assert rail.departure.planned == datetime(2026, 3, 3, 17, 0, tzinfo=timezone.utc)
    assert rail.departure.estimated == datetime(2026, 3, 3, 17, 30, tzinfo=timezone.utc)
    assert rail.departure.actual == datetime(2026, 3, 3, 18, 0, tzinfo=timezone.utc)
    assert journey.legs[0].departure.estimated is None


def test_example_journey_charges_total_per_currency(journey: ShipmentRecord) -> None:
    assert journey.charges_total == [
        MoneyTotal(amount=Decimal("11060.50"), currency="CNY"),
        MoneyTotal(amount=Decimal("1380.00"), currency="MYR"),
        MoneyTotal(amount=Decimal("1845.00"), currency="USD"),
    ]


def test_example_journey_folds_to_the_same_record_in_reverse(journey: ShipmentRecord) -> None:
    events = [hub_event(doc) for doc in reversed(example_journey_docs())]
    assert project(apply_all(ShipmentState("SHP-2026-000042"), events), AUTHORITY) == journey

"""A carrier speaks only for the legs it carries: other carriers' reports are refused with a reason, never applied."""

from __future__ import annotations

from ..builders import (
    MTO,
    booking_doc,
    envelope,
    record_of,
    settlement_doc,
    tracking_doc,
    waybill_doc,
)


def test_tracking_from_the_carrier_of_another_leg_is_refused_and_not_applied() -> None:
    forged = tracking_doc("arrived", leg=1, source="carrier.sea", event_id="sea-says-road-arrived")
    record = record_of(booking_doc(), forged)
    assert record.legs[0].status == "planned"
    assert [(r.event, r.reason) for r in record.rejected] == [
        ("carrier.sea/sea-says-road-arrived", "leg 1 is carried by carrier.road, not carrier.sea")
    ]


def test_the_legs_own_carrier_and_the_mto_may_report_on_it() -> None:
    own = tracking_doc("departed", leg=1, occurred=5)
    by_mto = tracking_doc("arrived", leg=1, occurred=9, source=MTO, event_id="mto-arrived")
    record = record_of(booking_doc(), own, by_mto)
    assert record.legs[0].status == "arrived"
    assert record.rejected == []


def test_a_party_that_carries_no_leg_is_refused_even_without_naming_one() -> None:
    stranger = tracking_doc("departed", leg=None, source="carrier.stranger", event_id="s-1")
    record = record_of(booking_doc(), stranger)
    assert [r.reason for r in record.rejected] == ["carrier.stranger carries no leg of this shipment"]
    assert record.awaiting_placement == []


def test_charges_for_another_carriers_leg_or_in_another_carriers_name_are_refused() -> None:
    other_leg = settlement_doc([("FRT", "900.00", "USD")], leg=2, source="carrier.road", event_id="inv-road-2")
    other_name = settlement_doc([("FRT", "100.00", "USD")], leg=1, event_id="inv-in-rail-name")
    other_name["source"] = "carrier.road"
    other_name["payload"]["carrier"] = "carrier.rail"
    record = record_of(booking_doc(), other_leg, other_name)
    assert all(leg.charges == [] for leg in record.legs)
    assert sorted(r.reason for r in record.rejected) == [
        "carrier.road may bill only its own charges, not carrier.rail's",
        "leg 2 is carried by carrier.rail, not carrier.road",
    ]


def test_a_document_for_another_carriers_leg_is_refused() -> None:
    forged = waybill_doc("sea_waybill", "SWB-1", leg=3, source="carrier.rail")
    record = record_of(booking_doc(), forged)
    assert record.legs[2].documents == []
    assert [r.reason for r in record.rejected] == ["leg 3 is carried by carrier.sea, not carrier.rail"]


def test_a_handover_is_reported_by_either_side_but_not_by_a_third_carrier() -> None:
    def handover(source: str, event_id: str) -> dict[str, object]:
        payload = {"from_leg": 1, "to_leg": 2, "location": "CNCKG", "packages": 4, "gross_weight_kg": "1200.000"}
        return envelope("handover", payload, event_id=event_id, source=source, occurred=20)

    record = record_of(booking_doc(), handover("carrier.road", "h-road"), handover("carrier.rail", "h-rail"), handover("carrier.sea", "h-sea"))
    assert sorted(h.set_by for h in record.handovers) == ["carrier.rail/h-rail", "carrier.road/h-road"]
    assert [r.reason for r in record.rejected] == ["carrier.sea is on neither side of the handover from leg 1 to leg 2"]


def test_a_refusal_does_not_depend_on_whether_the_booking_came_first() -> None:
    forged = tracking_doc("arrived", leg=1, source="carrier.sea", event_id="late-forgery")
    assert record_of(forged, booking_doc()) == record_of(booking_doc(), forged)


def test_only_an_entitlement_refusal_is_final_an_out_of_order_conflict_is_not() -> None:
    # A transfer seen before the issuance is a conflict the next event may resolve: listed, not dead-lettered.
    forged = tracking_doc("arrived", leg=1, source="carrier.sea", event_id="sea-on-road")
    transfer = waybill_doc("multimodal_transport_document", "MTD-1", source=MTO, event_id="mtd-transfer", occurred=30)
    transfer["payload"].update(action="transferred", holder="consignee.test")
    before_issue = record_of(booking_doc(), forged, transfer)
    assert sorted((r.event, r.kind) for r in before_issue.rejected) == [
        ("carrier.sea/sea-on-road", "not_entitled"),
        ("mto.test/mtd-transfer", "conflict"),
    ]
    issue = waybill_doc("multimodal_transport_document", "MTD-1", source=MTO, event_id="mtd-issue", occurred=10)
    after_issue = record_of(booking_doc(), forged, transfer, issue)
    assert [(r.event, r.kind) for r in after_issue.rejected] == [("carrier.sea/sea-on-road", "not_entitled")]

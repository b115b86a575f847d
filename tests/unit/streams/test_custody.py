"""Custody along the journey: who held the cargo when, handovers that fit the booking, and counts that do not match.

The default booking: 4 packages, 1200.500 kg; road CNCTU-CNCKG, rail CNCKG-CNQZH, sea CNQZH-SGSIN.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import BookingEvent, BookingPayload, HandoverEvent
from schemas.record import CustodyRecord, Discrepancy, ShipmentRecord
from streams.custody import WEIGHT_TOLERANCE, discrepancies, handovers

from ..builders import LEGS, MTO, SHIPMENT, Doc, booking_doc, envelope, example_journey_docs, hub_event, record_of, tracking_doc, when
from .test_booking_lifecycle import decision

BOOKED_KG = "1200.500"


def handover_doc(
    from_leg: int | None,
    to_leg: int | None,
    *,
    occurred: float,
    packages: int = 4,
    weight: str = BOOKED_KG,
    event_id: str | None = None,
    location: str | None = None,
) -> Doc:
    """A handover reported by the party taking the cargo over, at the place the legs meet (by default)."""
    if location is None:
        location = LEGS[to_leg - 1][2] if to_leg is not None and to_leg <= len(LEGS) else LEGS[-1][3]
    payload: Doc = {
        "from_leg": from_leg,
        "to_leg": to_leg,
        "location": location,
        "packages": packages,
        "gross_weight_kg": weight,
    }
    source = LEGS[to_leg - 1][1] if to_leg is not None and to_leg <= len(LEGS) else "consignee.test"
    event_id = event_id or f"ho-{from_leg or 0}-{to_leg or 'c'}"
    return envelope("handover", payload, event_id=event_id, source=source, occurred=occurred)


def key(doc: Doc) -> str:
    return f"{doc['source']}/{doc['event_id']}"


def plan() -> BookingPayload:
    event = hub_event(booking_doc())
    assert isinstance(event, BookingEvent)
    return event.payload


def found_in(*docs: Doc) -> list[Discrepancy]:
    """`discrepancies` straight from the custody module, on handovers placed against the default booking."""
    events = [hub_event(doc) for doc in docs]
    placed, _ = handovers([e for e in events if isinstance(e, HandoverEvent)], plan())
    return discrepancies(placed, plan())


PICKUP = handover_doc(None, 1, occurred=10)
ROAD_TO_RAIL = handover_doc(1, 2, occurred=30)
RAIL_TO_SEA = handover_doc(2, 3, occurred=50)
DELIVERY = handover_doc(3, None, occurred=80)


# --- the custody timeline ---------------------------------------------------------------------------------------------


def test_custody_runs_from_shipper_through_each_legs_carrier_to_consignee_from_handovers() -> None:
    expected = [
        CustodyRecord(party="shipper.test", role="shipper", leg=None, since=None, until=when(10), set_by=key(PICKUP)),
        CustodyRecord(party="carrier.road", role="carrier", leg=1, since=when(10), until=when(30), set_by=key(PICKUP)),
        CustodyRecord(party="carrier.rail", role="carrier", leg=2, since=when(30), until=when(50), set_by=key(ROAD_TO_RAIL)),
        CustodyRecord(party="carrier.sea", role="carrier", leg=3, since=when(50), until=when(80), set_by=key(RAIL_TO_SEA)),
        CustodyRecord(party="consignee.test", role="consignee", leg=None, since=when(80), until=None, set_by=key(DELIVERY)),
    ]
    docs = [booking_doc(), PICKUP, ROAD_TO_RAIL, RAIL_TO_SEA, DELIVERY]
    for record in (record_of(*docs), record_of(*reversed(docs))):
        assert record.custody == expected
        assert [h.set_by for h in record.handovers] == [key(d) for d in docs[1:]]
        assert [(h.from_party, h.to_party) for h in record.handovers] == [
            ("shipper.test", "carrier.road"),
            ("carrier.road", "carrier.rail"),
            ("carrier.rail", "carrier.sea"),
            ("carrier.sea", "consignee.test"),
        ]
        assert record.discrepancies == []
        assert record.awaiting_placement == []


def test_custody_falls_back_to_the_carriers_actual_milestones_without_handovers() -> None:
    received = tracking_doc("received", leg=1, occurred=10)
    road_handed = tracking_doc("handed_over", leg=1, occurred=30)
    rail_loaded = tracking_doc("loaded", leg=2, occurred=32)
    rail_departed = tracking_doc("departed", leg=2, occurred=34)
    rail_arrived = tracking_doc("arrived", leg=2, occurred=50)
    sea_departed = tracking_doc("departed", leg=3, occurred=55)
    sea_delivered = tracking_doc("delivered", leg=3, occurred=80)
    record = record_of(booking_doc(), received, road_handed, rail_loaded, rail_departed, rail_arrived, sea_departed, sea_delivered)
    assert [(c.party, c.since, c.until, c.set_by) for c in record.custody] == [
        ("shipper.test", None, when(10), key(received)),
        ("carrier.road", when(10), when(30), key(received)),
        ("carrier.rail", when(32), None, key(rail_loaded)),  # arrival is not an end of custody: nobody took it over yet
        ("carrier.sea", when(55), when(80), key(sea_departed)),
        ("consignee.test", when(80), None, key(sea_delivered)),
    ]


def test_planned_and_estimated_milestones_do_not_move_custody() -> None:
    record = record_of(
        booking_doc(),
        tracking_doc("received", leg=1, occurred=10, classifier="PLN"),
        tracking_doc("delivered", leg=3, occurred=80, classifier="EST"),
    )
    assert [(c.role, c.since, c.until, c.set_by) for c in record.custody] == [
        ("shipper", None, None, None),
        ("carrier", None, None, None),
        ("carrier", None, None, None),
        ("carrier", None, None, None),
    ]


def test_no_consignee_in_custody_before_delivery() -> None:
    record = record_of(booking_doc(), PICKUP, ROAD_TO_RAIL)
    assert [c.role for c in record.custody] == ["shipper", "carrier", "carrier", "carrier"]
    assert (record.custody[2].since, record.custody[2].until) == (when(30), None)


def test_handover_takes_precedence_over_a_milestone_for_the_same_moment() -> None:
    record = record_of(booking_doc(), tracking_doc("received", leg=1, occurred=12), PICKUP)
    assert (record.custody[0].until, record.custody[1].since, record.custody[1].set_by) == (when(10), when(10), key(PICKUP))


def test_example_journey_custody_follows_its_handovers_without_a_discrepancy() -> None:
    record = record_of(*example_journey_docs(), shipment_id="SHP-2026-000042")
    assert [c.party for c in record.custody] == [
        "shipper.chengdu-elec",
        "carrier.sc-road",
        "carrier.cr-rail",
        "carrier.oceanline",
        "carrier.my-haulage",
        "consignee.johor-assembly",
    ]
    assert all(c.set_by is not None and c.set_by.split("/")[1].startswith("ho-") for c in record.custody)
    assert len(record.handovers) == 5
    assert record.discrepancies == []  # 8398.500 kg against 8400.000 is within the scales' tolerance


# --- discrepancies ----------------------------------------------------------------------------------------------------


def test_handover_counting_fewer_packages_than_booked_is_a_discrepancy_on_the_handing_over_leg() -> None:
    short = handover_doc(1, 2, occurred=30, packages=3)
    assert found_in(short) == [
        Discrepancy(
            kind="packages",
            compared_with="booking",
            expected=Decimal(4),
            found=Decimal(3),
            leg=1,
            location="CNCKG",
            at=when(30),
            set_by=key(short),
        )
    ]


def test_shortfall_at_pickup_is_a_discrepancy_of_no_leg() -> None:
    [discrepancy] = found_in(handover_doc(None, 1, occurred=10, packages=3))
    assert (discrepancy.kind, discrepancy.leg, discrepancy.compared_with) == ("packages", None, "booking")


def test_later_handover_keeping_the_short_count_raises_no_second_discrepancy() -> None:
    short = handover_doc(1, 2, occurred=30, packages=3)
    found = found_in(short, handover_doc(2, 3, occurred=50, packages=3), handover_doc(3, None, occurred=80, packages=3))
    assert [(d.set_by, d.leg) for d in found] == [(key(short), 1)]


def test_later_handover_is_compared_with_the_previous_handover_not_the_booking() -> None:
    later = handover_doc(2, 3, occurred=50, packages=2)
    found = found_in(handover_doc(1, 2, occurred=30, packages=3), later)
    assert [(d.set_by, d.compared_with, d.expected, d.found, d.leg) for d in found if d.set_by == key(later)] == [
        (key(later), "previous_handover", Decimal(3), Decimal(2), 2)
    ]


def test_more_packages_than_booked_is_also_a_discrepancy() -> None:
    [discrepancy] = found_in(handover_doc(1, 2, occurred=30, packages=5))
    assert (discrepancy.expected, discrepancy.found) == (Decimal(4), Decimal(5))


def test_weight_within_half_a_percent_is_not_a_discrepancy() -> None:
    assert WEIGHT_TOLERANCE == Decimal("0.005")
    tolerance = Decimal(BOOKED_KG) * WEIGHT_TOLERANCE  # 6.0025 kg
    for weight in (Decimal(BOOKED_KG) - tolerance, Decimal(BOOKED_KG) + tolerance, Decimal("1194.498")):
        assert found_in(handover_doc(1, 2, occurred=30, weight=str(weight))) == [], weight


def test_weight_beyond_half_a_percent_is_a_discrepancy() -> None:
    for weight in ("1194.497", "1206.503", "1100.500"):
        [discrepancy] = found_in(handover_doc(1, 2, occurred=30, weight=weight))
        assert (discrepancy.kind, discrepancy.expected, discrepancy.found, discrepancy.leg) == (
            "weight",
            Decimal(BOOKED_KG),
            Decimal(weight),
            1,
        )


def test_weight_tolerance_is_taken_from_the_previous_handover() -> None:
    # 1150 kg is 4.2% light against the booking but within 0.5% of what the rail carrier took over.
    found = found_in(handover_doc(1, 2, occurred=30, weight="1150.000"), handover_doc(2, 3, occurred=50, weight="1145.000"))
    assert [(d.kind, d.leg, d.compared_with) for d in found] == [("weight", 1, "booking")]


def test_handovers_naming_legs_the_booking_lacks_await_placement() -> None:
    beyond = handover_doc(3, 4, occurred=70, packages=1, location="SGSIN")
    delivery_by_a_leg_not_booked = handover_doc(4, None, occurred=75, packages=1, location="SGSIN")
    pickup_by_a_middle_leg = handover_doc(None, 2, occurred=20, packages=1)
    record = record_of(booking_doc(), beyond, delivery_by_a_leg_not_booked, pickup_by_a_middle_leg)
    assert record.awaiting_placement == sorted(key(d) for d in (beyond, delivery_by_a_leg_not_booked, pickup_by_a_middle_leg))
    assert (record.handovers, record.discrepancies, record.claims) == ([], [], [])
    assert [c.role for c in record.custody] == ["shipper", "carrier", "carrier", "carrier"]


# --- discrepancies become claims (through project) --------------------------------------------------------------------


def test_discrepancy_opens_a_handover_discrepancy_claim_on_the_handing_over_leg() -> None:
    short = handover_doc(2, 3, occurred=50, packages=3)
    record = record_of(booking_doc(), PICKUP, ROAD_TO_RAIL, short)
    assert [(d.kind, d.leg, d.set_by) for d in record.discrepancies] == [("packages", 2, key(short))]
    [claim] = record.claims
    assert claim.claim_id == f"CLM-{SHIPMENT}-handover_discrepancy-L2"
    assert (claim.kind, claim.leg, claim.localised, claim.custody_carrier, claim.liable_carrier) == (
        "handover_discrepancy",
        2,
        True,
        "carrier.rail",
        "carrier.rail",
    )
    assert (claim.evidence, claim.occurred_at, claim.location, claim.affected_packages) == ([key(short)], when(50), "CNQZH", 1)


def test_shortfall_at_pickup_from_the_shipper_is_a_discrepancy_but_not_a_claim() -> None:
    record = record_of(booking_doc(), handover_doc(None, 1, occurred=10, packages=3))
    assert [(d.kind, d.leg) for d in record.discrepancies] == [("packages", None)]
    assert record.claims == []


# --- order does not matter (property) ---------------------------------------------------------------------------------

_PAIRS = [(None, 1), (1, 2), (2, 3), (3, None), (3, 4), (None, 2)]
_WEIGHTS = ["1200.500", "1196.000", "1150.000", "1149.000"]
_PARTIES = [MTO, MTO, "carrier.road", "carrier.rail", "carrier.sea"]
_HOURS = st.integers(0, 6)  # few distinct times, so ties between events are common


@st.composite
def lifecycle_and_custody_events(draw: st.DrawFn) -> list[Doc]:
    """A booking with decisions, leg answers, handovers and milestones from whoever, at clashing times."""
    docs: list[Doc] = [booking_doc()]
    for i in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["confirmed", "rejected", "cancelled"]))
        docs.append(decision(action, event_id=f"dec-{i}", occurred=draw(_HOURS), source=draw(st.sampled_from(_PARTIES))))
    for i in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["leg_accepted", "leg_declined"]))
        leg, source = draw(st.integers(1, 4)), draw(st.sampled_from(_PARTIES[2:]))
        docs.append(decision(action, event_id=f"ans-{i}", occurred=draw(_HOURS), source=source, leg=leg))
    for i in range(draw(st.integers(0, 6))):
        from_leg, to_leg = draw(st.sampled_from(_PAIRS))
        packages, weight = draw(st.integers(2, 5)), draw(st.sampled_from(_WEIGHTS))
        docs.append(handover_doc(from_leg, to_leg, occurred=draw(_HOURS), packages=packages, weight=weight, event_id=f"ho-{i}"))
    for i in range(draw(st.integers(0, 5))):
        status = draw(st.sampled_from(["received", "loaded", "departed", "handed_over", "delivered"]))
        leg = draw(st.integers(1, 3))
        docs.append(tracking_doc(status, leg=leg, occurred=draw(_HOURS), event_id=f"trk-{i}"))
    return docs


def lifecycle_and_custody(record: ShipmentRecord) -> tuple[object, ...]:
    return (
        record.booking_status,
        record.booking_status_set_by,
        record.status,
        [(leg.carrier_response, leg.carrier_response_set_by) for leg in record.legs],
        record.custody,
        record.handovers,
        record.discrepancies,
        record.claims,
        record.rejected,
        record.awaiting_placement,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=lifecycle_and_custody_events(), data=st.data())
def test_booking_status_custody_and_discrepancies_are_the_same_for_any_permutation_of_the_events(
    docs: list[Doc], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(docs), label="arrival order")
    duplicates = data.draw(st.lists(st.sampled_from(docs), max_size=3), label="redelivered copies")
    assert lifecycle_and_custody(record_of(*shuffled, *duplicates)) == lifecycle_and_custody(record_of(*docs))

"""A GS1 CBV `receiving` read against the booking (streams.merge._against_the_plan). CBV has no delivery step: the
receiver takes the objects into its custody at bizLocation. The parser keeps the step as `received` with the site
(SGLN) and UN/LOCODE it read; the projection decides, from the booking alone, whatever the order of arrival:
at a site the booking declares for the consignee, or at the last leg's planned destination, it delivers the last leg;
at another leg's planned destination it is that leg's arrival; anywhere else it stays `received`.

The events here are real EPCIS 2.0 ObjectEvents run through the EPCIS parser, as the hub reads them."""

from __future__ import annotations

from random import Random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.epcis.parse import parse
from schemas.events import HubEvent, TrackingEvent
from schemas.record import LegRecord, ShipmentRecord
from streams.copies import canonical_json
from streams.merge import ShipmentState, apply_all, project
from streams.references import addressed

from ..builders import AUTHORITY, SHIPMENT, Doc, booking_doc, carrier_of, envelope, hub_event
from .test_custody import handover_doc

SITE = "9555012000100"  # the consignee's warehouse (GLN 9555012 00010 0)
SITE_EPC = "urn:epc:id:sgln:9555012.00010.0"
DOCK = "urn:epc:id:sgln:9555012.00010.DOCK4"  # a part of it: GLN extension DOCK4
ELSEWHERE = "urn:epc:id:sgln:9555012.00020.7"  # another site of the same company (GLN 9555012000207)
CONTAINER = "urn:epc:id:bic:CSQU3054383"
PALLETS = [f"urn:epc:id:sscc:6901234.000001234{n}" for n in range(5)]  # five SSCCs; the booking has 4 packages


def booking(*, sites: list[str] | None = None, revised: float | None = None) -> Doc:
    doc = booking_doc(revised=revised)
    if sites is not None:
        doc["payload"]["consignee_sites"] = sites
    return doc


def epcis(leg: int, hours: float, *, step: str = "receiving", **fields: Any) -> TrackingEvent:
    """One ObjectEvent of the carrier of `leg`, parsed, addressed to the shipment."""
    event: Doc = {
        "type": "ObjectEvent",
        "eventTime": f"2026-03-0{1 + int(hours) // 24}T{int(hours) % 24:02d}:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": f"urn:epcglobal:cbv:bizstep:{step}",
        "epcList": [CONTAINER],
        **fields,
    }
    [parsed] = parse(orjson.dumps(event), carrier_of(leg))
    assert isinstance(parsed, TrackingEvent), parsed
    addressed_event = addressed(parsed, SHIPMENT)
    assert isinstance(addressed_event, TrackingEvent)
    return addressed_event


def record(*events: HubEvent | Doc) -> ShipmentRecord:
    hub = [hub_event(e) if isinstance(e, dict) else e for e in events]
    return project(apply_all(ShipmentState(SHIPMENT), hub), AUTHORITY)


def milestone_of(leg: LegRecord, event: TrackingEvent) -> tuple[str, str, str | None]:
    [found] = [m for m in leg.milestones if m.set_by == event.key]
    return found.status, found.raw_code, found.location


def place(ident: str) -> Doc:
    return {"id": ident}


# --- the mapping ---------------------------------------------------------------------------------------------------


def test_receiving_at_a_site_the_booking_declares_for_the_consignee_delivers_the_last_leg() -> None:
    # The readPoint's UN/LOCODE is not the planned destination: the site alone says it is the consignee's.
    received = epcis(3, 70, readPoint=place("urn:un:locode:MYJHB"), bizLocation=place(SITE_EPC))
    assert received.payload.status == "received" and received.payload.site == SITE  # what the parser says
    shipment = record(booking(sites=[SITE]), received)
    assert shipment.status == "delivered"
    assert shipment.legs[2].status == "delivered" and shipment.legs[2].status_set_by == received.key
    assert milestone_of(shipment.legs[2], received) == ("delivered", "receiving", "MYJHB")
    assert shipment.legs[2].arrival.actual == received.occurred_at  # a last mile may report only its delivery
    # Without the declared site the same event is a receipt somewhere on the way.
    before = record(booking(), received)
    assert before.status == "in_transit" and milestone_of(before.legs[2], received)[0] == "received"


def test_a_declared_gln_covers_its_parts_but_a_declared_part_only_itself() -> None:
    at_dock = epcis(3, 70, bizLocation=place(DOCK))
    assert at_dock.payload.site == f"{SITE}/DOCK4"
    assert record(booking(sites=[SITE]), at_dock).legs[2].status == "delivered"
    assert record(booking(sites=[f"{SITE}/DOCK4"]), at_dock).legs[2].status == "delivered"
    at_site = epcis(3, 70, bizLocation=place(SITE_EPC))
    assert record(booking(sites=[f"{SITE}/DOCK4"]), at_site).legs[2].status == "received"


def test_receiving_at_the_last_legs_planned_destination_delivers_it() -> None:
    received = epcis(3, 70, readPoint=place("urn:un:locode:SGSIN"))
    shipment = record(booking(), received)
    assert shipment.status == "delivered"
    assert milestone_of(shipment.legs[2], received) == ("delivered", "receiving", "SGSIN")


def test_receiving_at_an_intermediate_legs_destination_is_that_legs_arrival() -> None:
    received = epcis(2, 45, readPoint=place("urn:un:locode:CNQZH"))
    shipment = record(booking(sites=[SITE]), received)
    assert shipment.status == "in_transit"
    assert milestone_of(shipment.legs[1], received) == ("arrived", "receiving", "CNQZH")
    assert shipment.legs[1].status == "arrived" and shipment.legs[1].arrival.actual == received.occurred_at


@pytest.mark.parametrize(
    ("leg", "where"),
    [
        (3, {"readPoint": place("urn:un:locode:CNQZH")}),  # the sea carrier's own receipt at its origin
        (3, {"readPoint": place("urn:un:locode:MYPKG"), "bizLocation": place(ELSEWHERE)}),  # a depot on the way
        (3, {}),  # nowhere said
        (2, {"bizLocation": place(SITE_EPC)}),  # the consignee's site, but not the last leg: not its delivery
        # the consignee's site named only as the transfer's destination, not where the objects are (bizLocation)
        (3, {"bizLocation": place(ELSEWHERE), "destinationList": [{"type": "location", "destination": SITE_EPC}]}),
    ],
)
def test_receiving_anywhere_else_stays_received(leg: int, where: Doc) -> None:
    received = epcis(leg, 20 * leg + 10, **where)
    shipment = record(booking(sites=[SITE]), received)
    assert shipment.status == "in_transit"
    assert milestone_of(shipment.legs[leg - 1], received)[:2] == ("received", "receiving")
    assert shipment.legs[leg - 1].status == "received"


def test_an_incident_disposition_at_the_consignee_is_the_incident_not_a_delivery() -> None:
    damaged = epcis(3, 70, bizLocation=place(SITE_EPC), disposition="urn:epcglobal:cbv:disp:damaged")
    shipment = record(booking(sites=[SITE]), damaged)
    assert shipment.status != "delivered"
    assert [m.status for m in shipment.legs[2].exceptions] == ["damaged"]
    assert all(m.status != "delivered" for m in shipment.legs[2].milestones)


def test_only_a_receipt_is_read_so_whatever_status_a_report_spelling_the_cbv_code_gives() -> None:
    # A canonical report may name the CBV code list and `receiving` with another status: that status stands.
    report: Doc = envelope(
        "tracking",
        {"status": "damaged", "raw_code": "receiving", "code_list": "GS1-CBV-bizStep", "leg": 3, "site": SITE},
        event_id="dmg-3",
        source=carrier_of(3),
        occurred=70,
    )
    shipment = record(booking(sites=[SITE]), report)
    assert shipment.status != "delivered"
    assert [m.status for m in shipment.legs[2].exceptions] == ["damaged"]
    assert all(m.status != "delivered" for m in shipment.legs[2].milestones)


@pytest.mark.parametrize("step", ["arriving", "accepting", "shipping"])
def test_other_steps_at_the_consignee_keep_their_own_meaning(step: str) -> None:
    # arriving: at the location, not yet taken in; accepting: a change of possession (e.g. a carrier's pickup);
    # shipping: gone from the location.
    event = epcis(3, 70, step=step, bizLocation=place(SITE_EPC))
    shipment = record(booking(sites=[SITE]), event)
    assert milestone_of(shipment.legs[2], event)[0] != "delivered" and shipment.status == "in_transit"


# --- packages counted by SSCC ---------------------------------------------------------------------------------------


def test_a_delivery_naming_fewer_sscc_than_booked_is_a_package_discrepancy_of_the_last_leg() -> None:
    received = epcis(3, 70, bizLocation=place(SITE_EPC), epcList=[CONTAINER, *PALLETS[:3]])
    assert received.payload.packages == 3
    shipment = record(booking(sites=[SITE]), received)
    assert shipment.status == "delivered"
    [found] = shipment.discrepancies
    assert (found.kind, found.compared_with, found.expected, found.found) == ("packages", "booking", 4, 3)
    assert (found.leg, found.location, found.at, found.set_by) == (3, "SGSIN", received.occurred_at, received.key)
    assert [c.leg for c in shipment.claims] == [3]  # a shortage at delivery: the last leg's, as at a handover


def test_a_delivery_naming_what_the_last_leg_took_over_is_no_discrepancy() -> None:
    all_four = epcis(3, 70, bizLocation=place(SITE_EPC), epcList=PALLETS[:4])
    assert record(booking(sites=[SITE]), all_four).discrepancies == []
    # The sea leg took over 3 (a discrepancy of that handover): a delivery of those 3 adds none of its own.
    three = epcis(3, 70, bizLocation=place(SITE_EPC), epcList=PALLETS[:3])
    shipment = record(booking(sites=[SITE]), handover_doc(2, 3, occurred=50, packages=3), three)
    assert [(d.set_by, d.compared_with) for d in shipment.discrepancies if d.kind == "packages"] == [
        ("carrier.sea/ho-2-3", "booking")
    ]
    # ...and one of 5 is counted against those 3.
    five = epcis(3, 70, bizLocation=place(SITE_EPC), epcList=PALLETS)
    shipment = record(booking(sites=[SITE]), handover_doc(2, 3, occurred=50, packages=3), five)
    counted = [d for d in shipment.discrepancies if d.set_by == five.key]
    assert [(d.compared_with, d.expected, d.found) for d in counted] == [("previous_handover", 3, 5)]


def test_ssccs_of_a_receipt_that_is_not_the_delivery_count_nothing() -> None:
    at_origin = epcis(3, 50, readPoint=place("urn:un:locode:CNQZH"), epcList=PALLETS[:1])
    assert record(booking(sites=[SITE]), at_origin).discrepancies == []


# --- the booking ---------------------------------------------------------------------------------------------------


def test_a_booking_without_consignee_sites_and_a_report_without_a_site_serialise_as_before() -> None:
    assert b"consignee_sites" not in canonical_json(hub_event(booking()))
    assert b'"site"' not in canonical_json(epcis(3, 70, readPoint=place("urn:un:locode:SGSIN")))
    assert b'"consignee_sites":["9555012000100"]' in canonical_json(hub_event(booking(sites=[SITE])))


@pytest.mark.parametrize("bad", ["9555012000101", "955501200010", "9555012000100/", "9555012000100/a b", "DEHAM"])
def test_a_consignee_site_is_a_gln_with_its_check_digit(bad: str) -> None:
    with pytest.raises(ValidationError, match="site|GLN"):
        hub_event(booking(sites=[bad]))


# --- whatever the order ----------------------------------------------------------------------------------------------

JOURNEY: list[HubEvent | Doc] = [
    booking(sites=[SITE], revised=1),  # an amendment: the first revision names no site, this one does
    epcis(3, 50, readPoint=place("urn:un:locode:CNQZH")),
    epcis(2, 45, readPoint=place("urn:un:locode:CNQZH")),
    epcis(3, 70, readPoint=place("urn:un:locode:MYJHB"), bizLocation=place(SITE_EPC), epcList=PALLETS[:3]),
    epcis(3, 60, step="departing", readPoint=place("urn:un:locode:CNQZH")),
    epcis(3, 69, step="arriving", readPoint=place("urn:un:locode:MYJHB")),
]
FIRST_BOOKING = booking()  # the same booking id, earlier revision, no site


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(range(1, len(JOURNEY))), max_size=8),
    with_first=st.booleans(),
    shuffle=st.randoms(use_true_random=False),
)
def test_the_reading_is_the_same_whatever_arrives_first_booking_last_included(
    chosen: list[int], with_first: bool, shuffle: Random
) -> None:
    events = [JOURNEY[0]] + [JOURNEY[i] for i in chosen] + ([FIRST_BOOKING] if with_first else [])
    expected = record(*events)
    again = list(events)
    shuffle.shuffle(again)
    assert record(*again) == expected
    # and the booking last of all: the carriers' events waited for it and are read against it then
    carriers_first = [e for e in again if isinstance(e, TrackingEvent)] + [e for e in again if isinstance(e, dict)]
    assert record(*carriers_first) == expected
    delivered = 3 in chosen
    assert (expected.status == "delivered") == delivered
    assert [(d.expected, d.found) for d in expected.discrepancies] == ([(4, 3)] if delivered else [])
    assert (expected.legs[1].status == "arrived") == (2 in chosen)

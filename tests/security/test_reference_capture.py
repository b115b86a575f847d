"""A party of one shipment may not draw another shipment's reports to its own by naming that shipment's container
(or document) in its own documents or booking. A report that names only a container goes to a live registration
of the container whose shipment its source reports on (the MTO and the legs' carriers), whatever the documents'
dates and whichever registration the book took in first (streams.references.resolve)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from schemas.events import HubEvent
from streams.merge import ShipmentState, apply_all, project
from streams.references import Book, Registration, register, registrations, request, resolve_offline
from tests.unit import builders as b

CONTAINER = "CSQU3054383"
VICTIM, ATTACKERS = "SHP-TEST-0002", "SHP-TEST-0001"


def _events() -> tuple[list[HubEvent], list[HubEvent], HubEvent]:
    booking = b.booking_doc(shipment_id=VICTIM)
    booking["payload"]["cargo"]["containers"] = [CONTAINER]
    # the attacker carries leg 1 of another shipment, and issues its own document there naming the victim's
    # container, dated a little after the victim's booking (the registration that began last wins among equals)
    theirs = b.booking_doc([(3, "carrier.evil", "CNCTU", "CNCKG")], shipment_id=ATTACKERS)
    theirs["payload"]["shipper"]["party_id"], theirs["payload"]["consignee"]["party_id"] = "shipper.evil", "consignee.evil"
    hijack = b.waybill_doc("road_consignment_note", "EVIL-1", leg=1, source="carrier.evil", shipment_id=ATTACKERS, occurred=1)
    hijack["payload"]["containers"] = [CONTAINER]
    # the victim's sea carrier reports its departure by the container alone, as carriers do
    report = b.tracking_doc("departed", leg=3, source="carrier.sea", occurred=72, shipment_id=None)
    report["payload"].pop("leg")
    report["references"] = [{"kind": "container", "value": CONTAINER}]
    return [b.hub_event(booking)], [b.hub_event(theirs), b.hub_event(hijack)], b.hub_event(report)


def test_the_offline_fold_sends_the_report_to_the_shipment_its_carrier_reports_on() -> None:
    victims, attackers, report = _events()
    placed, waiting = resolve_offline([*victims, *attackers, report], b.AUTHORITY)
    assert sorted(e.shipment_id or "" for e in placed if e.event_id == report.event_id) == [VICTIM]
    assert waiting == []


def _registration(shipment_id: str, events: list[HubEvent]) -> Registration:
    state = apply_all(ShipmentState(shipment_id), events)
    [found] = [r for r in registrations(state, project(state, b.AUTHORITY)) if r.reference.value == CONTAINER]
    return found


@pytest.mark.parametrize("victim_first", [True, False])
def test_the_stream_sends_the_report_to_the_shipment_its_carrier_reports_on(victim_first: bool) -> None:
    victims, attackers, report = _events()
    ours, theirs = _registration(VICTIM, victims), _registration(ATTACKERS, attackers)
    assert theirs.valid_from > ours.valid_from  # the attacker's began last: by time alone it would win
    book = Book()
    for registration in (ours, theirs) if victim_first else (theirs, ours):
        book, released = register(book, registration)
        assert released == []
    book, resolved = request(book, report, datetime.now(timezone.utc), None)
    assert resolved is not None and resolved.shipment_id == VICTIM


def test_a_report_from_a_party_of_neither_shipment_goes_to_the_registration_that_began_last() -> None:
    # where it goes, the merge refuses it (its source carries no leg there): the rule only settles where that happens
    victims, attackers, report = _events()
    stranger = report.model_copy(update={"source": "carrier.stranger"})
    book = Book()
    for registration in (_registration(VICTIM, victims), _registration(ATTACKERS, attackers)):
        book, _ = register(book, registration)
    _, resolved = request(book, stranger, datetime.now(timezone.utc), None)
    assert resolved is not None and resolved.shipment_id == ATTACKERS


def test_the_consignees_handover_by_container_goes_to_its_own_shipment() -> None:
    victims, attackers, _ = _events()
    # the attacker's shipment names other shipper and consignee: the victim's consignee takes delivery
    delivered = {"from_leg": 3, "to_leg": None, "location": b.LEGS[-1][3], "packages": 4, "gross_weight_kg": "1200.500"}
    handover = b.hub_event({
        **b.envelope("handover", delivered, event_id="ho-3-c", source="consignee.test", occurred=80, shipment_id=None),
        "references": [{"kind": "container", "value": CONTAINER}],
    })
    book = Book()
    for registration in (_registration(VICTIM, victims), _registration(ATTACKERS, attackers)):
        book, _ = register(book, registration)
    _, resolved = request(book, handover, datetime.now(timezone.utc), None)
    assert resolved is not None and resolved.shipment_id == VICTIM

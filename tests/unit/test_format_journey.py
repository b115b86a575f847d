"""examples/formats/: one journey whose four carriers each speak their own format. Every file parses without a
rejection, every carrier event (which names only its references) resolves to the shipment through the registrations
its booking and waybills make, and the folded record is what the shipper expects: delivered, four legs in the
carriers' own codes, one invoice paid in full."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from connectors.carriers import load_registry, load_signing_key, sign, verify
from connectors.formats import FORMATS
from connectors.journeys import Send, offline_records, resent, sends
from mmhub.cli import main
from schemas.base import MoneyTotal
from schemas.events import BookingEvent, HubEvent, TrackingEvent, WaybillEvent, identity_reference
from schemas.record import ShipmentRecord
from schemas.rejection import Rejection
from streams.horizon import Horizon
from streams.merge import HANDOVER_CODE_LIST, ShipmentState, apply_all, fold, project
from streams.references import (
    DOCUMENT_REFERENCE,
    Book,
    Registration,
    addressed,
    reference_key,
    register,
    registrations,
    request,
    resolve,
)
from streams.routing import route

from .builders import AUTHORITY, RECEIVED_AT

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FOLDER = EXAMPLES / "formats"
SHIPMENT = "SHP-2026-000044"
CONTAINER = "FCIU7044211"
MTO = "mto.westcorridor"

# file -> (format, the sender whose key signs it): from the manifest the demo and the integration test send by
SENDS = sends()[1]
FILES: dict[str, tuple[str, str]] = {send.path.name: (send.format_name, send.key.carrier) for send in SENDS}
CARRIER_FILES = [name for name, (_, sender) in FILES.items() if sender.startswith("carrier.")]
EVENTS_PER_FILE = {
    "mto.jsonl": 7,
    "insurer.jsonl": 1,
    "road.jsonl": 8,
    "rail.edi": 7,
    "rail.jsonl": 3,
    "sea.json": 8,
    "sea.jsonl": 4,
    "lastmile.jsonld": 4,
    "lastmile.jsonl": 5,
    "shipper.jsonl": 3,
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def parsed(name: str) -> list[HubEvent | Rejection]:
    format_name, sender = FILES[name]
    return FORMATS[format_name]((FOLDER / name).read_bytes(), sender)


def events_of(name: str) -> list[HubEvent]:
    results = parsed(name)
    events = [r for r in results if not isinstance(r, Rejection)]
    assert len(events) == len(results), [r for r in results if isinstance(r, Rejection)]
    return events


def everything() -> list[HubEvent]:
    """Every event as the hub ends up with it: reference-only ones with the shipment id resolution gives them."""
    return [addressed(e, SHIPMENT) if e.shipment_id is None else e for name in FILES for e in events_of(name)]


def reference_only() -> list[HubEvent]:
    return [e for name in CARRIER_FILES for e in events_of(name)]


def books(registered: list[Registration]) -> dict[str, Book]:
    """One reference book per registered reference, as hub.references keeps them."""
    out: dict[str, Book] = {}
    for registration in registered:
        key = reference_key(registration.reference)
        out[key], released = register(out.get(key, Book()), registration)
        assert released == []  # nothing was parked
    return out


def resolved_by(event: HubEvent, by_reference: dict[str, Book]) -> dict[str, str | None]:
    """Per reference the event names, the shipment its book sends it to (None: it would be parked there)."""
    out: dict[str, str | None] = {}
    for reference in event.references:
        _, forwarded = request(by_reference.get(reference_key(reference), Book()), event, event.recorded_at, None)
        out[reference_key(reference)] = None if forwarded is None else forwarded.shipment_id
    return out


@pytest.fixture(scope="module")
def state() -> ShipmentState:
    return apply_all(ShipmentState(SHIPMENT), everything())


@pytest.fixture(scope="module")
def record() -> ShipmentRecord:
    return fold(everything(), AUTHORITY)[SHIPMENT]


# --- parsing -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_each_file_parses_without_rejection_and_speaks_only_for_its_sender(name: str) -> None:
    events = events_of(name)
    assert len(events) == EVENTS_PER_FILE[name]
    assert {e.source for e in events} == {FILES[name][1]}  # the router refuses an event its signer did not source


@pytest.mark.parametrize("name", CARRIER_FILES)
def test_carriers_name_the_shipment_only_by_their_references(name: str) -> None:
    for event in events_of(name):
        assert event.shipment_id is None and event.references, event.key


@pytest.mark.parametrize("name", sorted(set(FILES) - set(CARRIER_FILES)))
def test_the_mto_insurer_and_shipper_name_the_hub_shipment(name: str) -> None:
    assert {e.shipment_id for e in events_of(name)} == {SHIPMENT}


@pytest.mark.parametrize("name", FILES)
def test_each_file_signed_with_its_senders_demo_key_is_accepted_and_routed(name: str) -> None:
    """What the gateway, the raw topics and `mmhub ingest` do first: check the signature over the exact bytes, then
    send each event to its shipment (hub.events) or, naming only references, to resolution (hub.references)."""
    sender = FILES[name][1]
    body = (FOLDER / name).read_bytes()
    key = load_signing_key(EXAMPLES / "keys" / f"{sender}.2025-01.json")
    registry = load_registry(EXAMPLES / "carriers.json")
    at = utc("2026-04-16T12:00")
    format_name = FILES[name][0]
    assert verify(registry, sender, key.key_id, sign(body, key, format_name, at), body, at, format_name) is None
    for event in events_of(name):
        routed = route(event, sender, RECEIVED_AT, Horizon())
        assert not isinstance(routed, Rejection), routed
        assert {o.stream for o in routed} == {"events" if event.shipment_id else "references"}


# --- reference resolution ------------------------------------------------------------------------------------------


def test_the_booking_and_the_waybills_register_every_reference_the_carriers_use(state: ShipmentState) -> None:
    every = registrations(state, project(state, AUTHORITY))
    registered = [r for r in every if r.reference.kind != "event"]
    legs = {reference_key(r.reference): r.leg for r in registered}
    assert legs == {
        f"container:{CONTAINER}": None,  # booked, and on every leg's waybill: no one leg
        "carrier_booking:QZH2604417": 3,
        "cmr:SCR-2026-9044": 1,
        "rail_waybill:CR-CQ-77120944": 2,
        "sea_waybill:OCLN260400451": 3,
        "cmr:MYH-JB-44012": 4,
        "transport_document:WLC-MTD-260406-0044": None,  # the MTO's through document, for its DCSA eBL notifications
    }
    assert {r.shipment_id for r in registered} == {SHIPMENT}
    # Complete when the last leg arrived (14:40 on 16 April, before the 15:30 handover to the consignee): the
    # references keep naming this shipment for the 14-day grace period after that, then the container is free.
    assert {r.valid_until for r in registered} == {utc("2026-04-30T14:40:00")}
    # Every event a carrier addressed by references registers its identity for good, for a retraction to find.
    identities = [r for r in every if r.reference.kind == "event"]
    addressed_by_references = [c.event for c in state.copies.values() if c.event.references]
    assert {r.reference for r in identities} == {identity_reference(e.source, e.event_id) for e in addressed_by_references}
    assert {r.valid_until for r in identities} == {None}


def test_every_reference_only_event_resolves_to_the_shipment(state: ShipmentState) -> None:
    by_reference = books(registrations(state, project(state, AUTHORITY)))
    for event in reference_only():
        found = resolved_by(event, by_reference)
        assert SHIPMENT in found.values(), (event.key, found)
        assert set(found.values()) <= {SHIPMENT, None}, (event.key, found)


def test_the_ocean_carriers_vessel_events_resolve_without_a_container(state: ShipmentState) -> None:
    """DCSA transport events (DEPA, ARRI) name the carrier booking and the sea waybill, not the container."""
    by_reference = books(registrations(state, project(state, AUTHORITY)))
    tracking = [e for e in events_of("sea.json") if isinstance(e, TrackingEvent)]
    vessel_events = [e for e in tracking if e.payload.raw_code in ("DEPA", "ARRI")]
    assert len(vessel_events) == 4
    for event in vessel_events:
        assert f"container:{CONTAINER}" not in {reference_key(r) for r in event.references}
        assert resolved_by(event, by_reference) == {
            "carrier_booking:QZH2604417": SHIPMENT,
            "sea_waybill:OCLN260400451": SHIPMENT,
        }


def test_each_carriers_waybill_resolves_through_the_booked_container_then_registers_its_number() -> None:
    """The chain: with only the MTO's events in, the booking registers the container (and the ocean carrier's booking
    reference); a carrier's waybill, naming only the container, resolves through it; once folded in, the waybill's own
    number registers for its leg, from the time it was issued."""
    booked = apply_all(ShipmentState(SHIPMENT), [addressed(e, SHIPMENT) for e in events_of("mto.jsonl")])
    by_reference = books(registrations(booked, project(booked, AUTHORITY)))
    # ...and the MTO's through document, issued in mto.jsonl, its own number
    assert set(by_reference) == {
        f"container:{CONTAINER}",
        "carrier_booking:QZH2604417",
        "transport_document:WLC-MTD-260406-0044",
    }
    waybills = [e for e in reference_only() if isinstance(e, WaybillEvent)]
    assert len(waybills) == 4
    for waybill in waybills:
        assert resolved_by(waybill, by_reference) == {f"container:{CONTAINER}": SHIPMENT}
        with_it = apply_all(booked, [addressed(waybill, SHIPMENT)])
        registered = registrations(with_it, project(with_it, AUTHORITY))
        number = {reference_key(r.reference): r for r in registered if r.reference.kind != "container"}
        key = f"{DOCUMENT_REFERENCE[waybill.payload.document_kind]}:{waybill.payload.document_number}"
        assert number[key].leg == waybill.payload.leg
        assert number[key].valid_from == waybill.occurred_at
        assert resolve(books([number[key]])[key], waybill.occurred_at) == number[key]


# --- what the shipper sees -----------------------------------------------------------------------------------------


def test_the_shipper_sees_one_delivered_journey_with_nothing_refused_or_left_over(record: ShipmentRecord) -> None:
    assert record.status == "delivered"
    assert record.booking_status == "confirmed"
    assert record.responsible_operator == MTO
    assert record.events_applied == record.version == sum(EVENTS_PER_FILE.values())
    assert record.rejected == []
    assert record.awaiting_placement == []
    assert record.discrepancies == []
    assert record.claims == []
    assert record.through_document is not None and record.through_document.status == "surrendered"
    assert record.insurance.policy is not None and record.insurance.policy.policy_number == "PICC-CG-2026-57310"
    assert [c.party for c in record.custody] == [
        "shipper.chengdu-elec",
        "carrier.sc-road",
        "carrier.cr-rail",
        "carrier.oceanline",
        "carrier.my-haulage",
        "consignee.johor-assembly",
    ]


def test_four_legs_with_their_carriers_documents_and_actual_times(record: ShipmentRecord) -> None:
    expected = [
        (1, "carrier.sc-road", "CNCTU", "CNCKG", "SCR-2026-9044", "2026-04-07T01:15", "2026-04-07T09:20"),
        (2, "carrier.cr-rail", "CNCKG", "CNQZH", "CR-CQ-77120944", "2026-04-07T17:10", "2026-04-09T18:40"),
        (3, "carrier.oceanline", "CNQZH", "SGSIN", "OCLN260400451", "2026-04-10T16:20", "2026-04-15T13:10"),
        (4, "carrier.my-haulage", "SGSIN", "MYJHB", "MYH-JB-44012", "2026-04-16T09:15", "2026-04-16T14:40"),
    ]
    assert len(record.legs) == 4
    for leg, (sequence, carrier, origin, destination, document, departed, arrived) in zip(record.legs, expected):
        assert (leg.sequence, leg.carrier, leg.origin, leg.destination) == (sequence, carrier, origin, destination)
        assert leg.carrier_response == "accepted"
        assert [d.number for d in leg.documents] == [document]
        assert leg.documents[0].containers == [CONTAINER]
        assert leg.departure.actual == utc(departed)
        assert leg.arrival.actual == utc(arrived)
        assert leg.unmapped == [] and leg.exceptions == []
        assert leg.charges and {c.carrier for c in leg.charges} == {carrier}
    # Estimates and plans stay in their own slots: the rail and ocean ETAs, the vessel's scheduled departure.
    assert record.legs[1].arrival.estimated == utc("2026-04-09T18:00")
    assert record.legs[2].arrival.estimated == utc("2026-04-15T14:00")
    assert record.legs[2].departure.planned == utc("2026-04-10T15:00")


def test_each_leg_keeps_the_raw_codes_of_its_carriers_format(record: ShipmentRecord) -> None:
    codes = {leg.sequence: {(m.code_list, m.raw_code, m.classifier) for m in leg.milestones} for leg in record.legs}
    handover = (HANDOVER_CODE_LIST, "handover", "ACT")  # the handover out of the leg, where no report says so
    assert codes[1] == {("sc-road", "PICKUP", "ACT"), ("sc-road", "DEPART", "ACT"), ("sc-road", "ARRIVE", "ACT"), handover}
    assert codes[2] == {
        ("UNECE-Rec24", code, classifier)
        for code, classifier in [
            ("74", "ACT"), ("48", "ACT"), ("24", "ACT"), ("1", "EST"), ("1", "ACT"), ("26", "ACT"), ("41", "ACT")
        ]
    }
    assert codes[3] == {
        ("DCSA-EquipmentEventTypeCode", "GTIN", "ACT"),
        ("DCSA-EquipmentEventTypeCode", "LOAD", "ACT"),
        ("DCSA-TransportEventTypeCode", "DEPA", "PLN"),
        ("DCSA-TransportEventTypeCode", "DEPA", "ACT"),
        ("DCSA-TransportEventTypeCode", "ARRI", "EST"),
        ("DCSA-TransportEventTypeCode", "ARRI", "ACT"),
        ("DCSA-EquipmentEventTypeCode", "DISC", "ACT"),
        ("DCSA-EquipmentEventTypeCode", "GTOT", "ACT"),
    }
    assert codes[4] == {
        ("GS1-CBV-bizStep", "receiving", "ACT"),
        ("GS1-CBV-bizStep", "departing", "ACT"),
        ("GS1-CBV-bizStep", "arriving", "ACT"),
    }
    # CBV has no delivery step: the carrier's `receiving` at its Singapore origin stays "received", while its
    # `receiving` at the consignee's site (bizLocation, an SGLN the booking declares) delivers the last leg. It is
    # at the same instant as the handover to the consignee, so the carrier's own report stands; the handover out of
    # the road leg hands it over: the legs, the custody and the status agree.
    last_mile = {m.status: m for m in record.legs[3].milestones}
    assert {status: (m.raw_code, m.location) for status, m in last_mile.items()} == {
        "received": ("receiving", "SGSIN"),
        "departed": ("departing", "SGSIN"),
        "arrived": ("arriving", "MYJHB"),
        "delivered": ("receiving", "MYJHB"),
    }
    assert [leg.status for leg in record.legs] == ["handed_over", "handed_over", "handed_over", "delivered"]
    assert record.legs[0].status_set_by == next(h.set_by for h in record.handovers if h.from_leg == 1)
    assert record.legs[3].status_set_by == last_mile["delivered"].set_by
    assert record.legs[3].status_set_by.startswith("carrier.my-haulage/epcis-hash:")
    assert [(h.from_leg, h.to_leg) for h in record.handovers][-1] == (4, None)


def test_one_invoice_of_the_carriers_charges_plus_margin_paid_in_full(record: ShipmentRecord) -> None:
    settlement = record.settlement
    assert settlement is not None
    assert settlement.status == "paid"
    assert settlement.missing_charges_for_legs == []
    assert len(settlement.invoices) == 1 and settlement.notes == []
    invoice = settlement.invoices[0]
    charged: dict[str, Decimal] = {}
    for leg in record.legs:
        for charge in leg.charges:
            charged[charge.amount.currency] = charged.get(charge.amount.currency, Decimal(0)) + charge.amount.amount
    assert {t.currency: t.amount for t in invoice.carrier_charges} == charged
    # the MTO's margin is 8% of the carriers' charges, per currency
    assert {t.currency: t.amount for t in invoice.margin} == {c: a * Decimal("0.08") for c, a in charged.items()}
    assert invoice.total == [
        MoneyTotal(amount=Decimal("12450.24"), currency="CNY"),
        MoneyTotal(amount=Decimal("1533.60"), currency="MYR"),
        MoneyTotal(amount=Decimal("2095.20"), currency="USD"),
    ]
    assert [(b.currency, b.invoiced, b.outstanding, b.status) for b in settlement.balance] == [
        ("CNY", Decimal("12450.24"), Decimal(0), "paid"),
        ("MYR", Decimal("1533.60"), Decimal(0), "paid"),
        ("USD", Decimal("2095.20"), Decimal(0), "paid"),
    ]
    assert {p.status for p in settlement.payments} == {"applied"}
    converted = [p for p in settlement.payments if p.rate is not None]
    assert [(p.amount.amount, p.amount.currency, p.applied) for p in converted] == [
        (Decimal("340.80"), "USD", MoneyTotal(amount=Decimal("1533.60"), currency="MYR"))
    ]
    assert {(p.carrier, p.status) for p in settlement.payouts} == {
        ("carrier.sc-road", "released"),
        ("carrier.cr-rail", "released"),
        ("carrier.oceanline", "released"),
        ("carrier.my-haulage", "released"),
    }


def test_the_booking_comes_from_the_mto_with_the_ocean_carriers_booking_reference() -> None:
    booking = next(e for e in events_of("mto.jsonl") if isinstance(e, BookingEvent))
    assert booking.payload.cargo.containers == [CONTAINER]
    assert [leg.carrier_booking for leg in booking.payload.legs] == [None, None, "QZH2604417", None]
    assert booking.payload.consignee_sites == ["9555012000100"]  # the bizLocation of the last-mile `receiving`


def test_the_manifest_sends_every_example_file_from_its_expected_sender() -> None:
    assert FILES == {
        "mto.jsonl": ("canonical", MTO),
        "insurer.jsonl": ("canonical", "insurer.picc"),
        "road.jsonl": ("canonical", "carrier.sc-road"),
        "rail.edi": ("edifact", "carrier.cr-rail"),
        "rail.jsonl": ("canonical", "carrier.cr-rail"),
        "sea.json": ("dcsa", "carrier.oceanline"),
        "sea.jsonl": ("canonical", "carrier.oceanline"),
        "lastmile.jsonld": ("epcis", "carrier.my-haulage"),
        "lastmile.jsonl": ("canonical", "carrier.my-haulage"),
        "shipper.jsonl": ("canonical", "shipper.chengdu-elec"),
    }
    assert set(EVENTS_PER_FILE) == set(FILES) == {p.name for p in FOLDER.iterdir() if p.suffix != ".md" and p.name != "manifest.json"}


# --- mmhub convert: the same journey offline, as a carrier's files would arrive -------------------------------------


def convert(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, send: Send, body: bytes) -> tuple[int, bytes, bytes]:
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}-{send.path.name}"
    path.write_bytes(body)
    code = main(["convert", "--format", send.format_name, "--source", send.key.carrier, str(path)])
    out, err = capsysbinary.readouterr()
    return code, out, err


def test_convert_output_shuffled_with_retransmissions_folds_to_the_journey(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    lines: list[bytes] = []
    for send in SENDS:
        for body in (send.body, resent(send)):  # every file twice; EDIFACT in a new interchange, EPCIS without eventIDs
            code, out, err = convert(capsysbinary, tmp_path, send, body)
            assert (code, err) == (0, b""), err
            lines += out.splitlines()
    rng = random.Random(44)
    lines += rng.sample(lines, 10)
    rng.shuffle(lines)
    log = tmp_path / "converted.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["fold", str(log)]) == 0
    out, _ = capsysbinary.readouterr()
    [folded] = orjson.loads(out)
    assert folded == offline_records(AUTHORITY)[SHIPMENT].model_dump(mode="json")


def test_convert_prints_each_refusal_with_its_code_and_exits_1(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    rail = next(send for send in SENDS if send.format_name == "edifact")
    broken = rail.body.replace(b"FCIU7044211", b"FCIU7044212", 1)  # a container whose check digit fails
    code, out, err = convert(capsysbinary, tmp_path, rail, broken)
    assert code == 1
    assert len(out.splitlines()) == EVENTS_PER_FILE["rail.edi"] - 1
    [refusal] = err.decode().splitlines()
    assert refusal.endswith(
        "rail.edi: invalid_event: event 0: message 'R44001' (UNH at segment 2), consignment 1 (CNI at segment 6), "
        "status 1 (STS at segment 7): EQD at segment 10: container number 'FCIU7044212' fails its ISO 6346 check "
        "digit (expected 1)"
    )


def test_convert_refuses_events_that_name_another_source(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    road = next(send for send in SENDS if send.path.name == "road.jsonl")
    impostor = Send(road.path, road.format_name, next(s.key for s in SENDS if s.path.name == "sea.json"), road.way, False)
    code, out, err = convert(capsysbinary, tmp_path, impostor, road.body)
    assert code == 1 and out == b""
    assert all(": wrong_source: " in line for line in err.decode().splitlines())

"""Event documents for unit tests: small, valid JSON-shaped dicts, validated through the real parsing path.

Times are hours after `T0` so a test reads as a timeline. Every builder returns a plain dict (what a carrier
sends); `hub_event` turns it into the canonical event exactly as the codec would.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from schemas.events import HUB_EVENT, HubEvent
from schemas.record import ShipmentRecord
from streams.authority import Authority, Operator
from streams.merge import ShipmentState, apply_all, project

SHIPMENT = "SHP-TEST-0001"
MTO = "mto.test"
RATE_SOURCES = frozenset({"rates.test", "imf.rates"})  # the publishers the tests' rates come from
# Who owns which shipment ids here: the test MTO its own, the property tests' MTO theirs, the demo MTO the examples'.
AUTHORITY = Authority.of(
    [
        Operator(MTO, ("SHP-TEST-",), frozenset({"insurer.test"}), RATE_SOURCES),
        Operator("mto.prop", ("SHP-PROP-",), frozenset({"insurer.prop"}), RATE_SOURCES),  # the strategies' insurer
        Operator("mto.westcorridor", ("SHP-2026-",), frozenset({"insurer.picc"})),
    ]
)
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
RECEIVED_AT = datetime(2026, 12, 1, tzinfo=timezone.utc)  # when the hub received what the tests route
JOURNEY = Path(__file__).resolve().parents[2] / "examples" / "journey.jsonl"

# (mode, carrier, origin, destination): road, rail, sea, as in a typical inland-to-port-to-port journey.
LEGS: list[tuple[int, str, str, str]] = [
    (3, "carrier.road", "CNCTU", "CNCKG"),
    (2, "carrier.rail", "CNCKG", "CNQZH"),
    (1, "carrier.sea", "CNQZH", "SGSIN"),
]

Doc = dict[str, Any]


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def when(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def envelope(
    event_type: str,
    payload: Doc,
    *,
    event_id: str,
    source: str,
    occurred: float = 0,
    recorded: float | None = None,
    classifier: str = "ACT",
    revised: float | None = None,
    retracted: bool = False,
    shipment_id: str | None = SHIPMENT,
) -> Doc:
    doc: Doc = {
        "event_id": event_id,
        "source": source,
        "event_type": event_type,
        "occurred_at": at(occurred),
        "recorded_at": at(occurred if recorded is None else recorded),
        "classifier": classifier,
        "payload": payload,
    }
    if shipment_id is not None:
        doc["shipment_id"] = shipment_id
    if revised is not None:
        doc["revised_at"] = at(revised)
    if retracted:
        doc["retracted"] = True
    return doc


def booking_doc(
    legs: list[tuple[int, str, str, str]] | None = None, *, event_id: str = "bkg-1", **envelope_fields: Any
) -> Doc:
    planned = legs if legs is not None else LEGS
    payload: Doc = {
        "shipper": {"party_id": "shipper.test", "name": "Test Shipper Ltd"},
        "consignee": {"party_id": "consignee.test", "name": "Test Consignee Sdn Bhd"},
        "mto": MTO,
        "cargo": {"description": "Machine parts", "pieces": 4, "packages": 4, "gross_weight_kg": "1200.500"},
        "declared_value": {"amount": "50000.00", "currency": "USD"},
        "legs": [
            {
                "sequence": sequence,
                "mode": mode,
                "carrier": carrier,
                "origin": origin,
                "destination": destination,
                "planned_departure": at(24 * sequence),
                "planned_arrival": at(24 * sequence + 12),
            }
            for sequence, (mode, carrier, origin, destination) in enumerate(planned, start=1)
        ],
    }
    envelope_fields.setdefault("source", MTO)
    return envelope("booking", payload, event_id=event_id, **envelope_fields)


def carrier_of(leg: int) -> str:
    return LEGS[leg - 1][1] if 1 <= leg <= len(LEGS) else "carrier.other"


def tracking_doc(
    status: str,
    *,
    leg: int | None = 1,
    event_id: str | None = None,
    source: str | None = None,
    location: str | None = None,
    **envelope_fields: Any,
) -> Doc:
    payload: Doc = {"status": status, "raw_code": status.upper()[:35], "code_list": "test-codes"}
    if leg is not None:
        payload["leg"] = leg
    if location is not None:
        payload["location"] = location
    classifier = envelope_fields.get("classifier", "ACT")
    return envelope(
        "tracking",
        payload,
        event_id=event_id or f"trk-{leg}-{status}-{classifier}".lower(),
        source=source or carrier_of(leg or 1),
        **envelope_fields,
    )


def waybill_doc(
    kind: str, number: str, *, leg: int | None = None, event_id: str | None = None, source: str | None = None, **envelope_fields: Any
) -> Doc:
    payload: Doc = {"document_kind": kind, "document_number": number, "issuer": source or carrier_of(leg or 1)}
    if leg is not None:
        payload["leg"] = leg
    return envelope(
        "waybill", payload, event_id=event_id or f"doc-{number}".lower(), source=source or carrier_of(leg or 1), **envelope_fields
    )


def settlement_doc(
    charges: list[tuple[str, Any, str]],
    *,
    leg: int | None = 1,
    event_id: str = "inv-1",
    source: str | None = None,
    **envelope_fields: Any,
) -> Doc:
    carrier = source or carrier_of(leg or 1)
    payload: Doc = {
        "carrier": carrier,
        "charges": [{"code": code, "amount": {"amount": amount, "currency": currency}} for code, amount, currency in charges],
    }
    if leg is not None:
        payload["leg"] = leg
    return envelope("settlement", payload, event_id=event_id, source=carrier, **envelope_fields)


def policy_doc(*, event_id: str = "pol-1", **envelope_fields: Any) -> Doc:
    payload: Doc = {
        "action": "policy_bound",
        "policy_number": "POL-2026-0001",
        "insurer": "insurer.test",
        "insured_value": {"amount": "55000.00", "currency": "USD"},
        "conditions": "ICC (A), warehouse to warehouse",
    }
    return envelope("insurance", payload, event_id=event_id, source="insurer.test", **envelope_fields)


def claim_doc(claim_id: str, status: str, *, event_id: str, amount: str | None = None, **envelope_fields: Any) -> Doc:
    payload: Doc = {"action": "claim_update", "claim_id": claim_id, "status": status}
    if amount is not None:
        payload["amount"] = {"amount": amount, "currency": "USD"}
    return envelope("insurance", payload, event_id=event_id, source="insurer.test", **envelope_fields)


def hub_event(doc: Doc) -> HubEvent:
    """The canonical event for a document, through the same validation the codec uses."""
    return HUB_EVENT.validate_python(doc)


def state_of(*docs: Doc, shipment_id: str = SHIPMENT) -> ShipmentState:
    return apply_all(ShipmentState(shipment_id), [hub_event(doc) for doc in docs])


def record_of(*docs: Doc, shipment_id: str = SHIPMENT) -> ShipmentRecord:
    return project(state_of(*docs, shipment_id=shipment_id), AUTHORITY)


def example_journey_lines() -> list[bytes]:
    return JOURNEY.read_bytes().splitlines()


def example_journey_docs() -> list[Doc]:
    return [orjson.loads(line) for line in example_journey_lines()]


def every_kind_docs(shipment_id: str = SHIPMENT) -> list[Doc]:
    """One valid document of every event type (both insurance actions), with every optional text field filled:
    what a test needs to reach each string field the schemas have."""
    booking = booking_doc(shipment_id=shipment_id)
    booking["payload"]["shipper"]["contact"] = "ops@shipper.test"
    booking["payload"]["legs"][0]["carrier_booking"] = "RB-1"
    booking["payload"]["cargo"]["containers"] = ["CSQU3054383"]
    booking["payload"]["cargo"]["dangerous_goods"] = [{"un_number": "UN1263", "hazard_class": "3"}]
    tracking = tracking_doc("damaged", location="CNCKG", shipment_id=shipment_id)
    tracking["payload"].update(container="CSQU3054383", transport_means="TRUCK 9", remarks="one case dented")
    settlement = settlement_doc([("FRT", "100.00", "USD")], shipment_id=shipment_id)
    settlement["payload"]["charges"][0]["description"] = "road freight"
    claim = claim_doc("CLM-1", "assessed", event_id="clm-1", amount="10.00", shipment_id=shipment_id)
    claim["payload"]["remarks"] = "survey done"
    waybill = waybill_doc("cmr", "CMR-1", leg=1, shipment_id=shipment_id)
    waybill["references"] = [{"kind": "cmr", "value": "CMR-1"}]
    mto = {"source": MTO, "shipment_id": shipment_id}
    return [
        booking,
        envelope("booking_status", {"action": "rejected", "reason": "no capacity"}, event_id="bst-1", **mto),
        waybill,
        tracking,
        envelope(
            "handover",
            {"from_leg": 1, "to_leg": 2, "location": "CNCKG", "packages": 4, "gross_weight_kg": "1200.500",
             "seals": ["SEAL-1"], "remarks": "seal intact"},
            event_id="hnd-1", source=carrier_of(2), shipment_id=shipment_id,
        ),
        settlement,
        envelope("margin", {"percent": "5", "fixed": [{"amount": "20.00", "currency": "USD"}]}, event_id="mrg-1", **mto),
        envelope(
            "payment",
            {"payment_id": "PMT-1", "payer": "shipper.test", "amount": {"amount": "5.00", "currency": "EUR"},
             "settles_currency": "USD"},
            event_id="pay-1", source="shipper.test", shipment_id=shipment_id,
        ),
        envelope(
            "rate",
            {"base": "EUR", "quote": "USD", "rate": "1.08", "rate_source": "ECB reference rate", "as_of": at(1)},
            event_id="rate-1", **mto,
        ),
        policy_doc(shipment_id=shipment_id),
        claim,
    ]

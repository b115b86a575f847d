"""Issue 14: a business transaction keeps its raw type (EPCIS bizTransactionList `type`, DCSA reference type code,
IFTSTA RFF qualifier) as a structured field of its reference, and the record shows it on the milestone that named it.
On eeb4899 the type lived only in free-text remarks (EPCIS) or was dropped (DCSA, IFTSTA)."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from connectors.epcis.parse import parse as parse_epcis
from schemas.events import CarrierReference, TrackingEvent
from streams.merge import apply_all, project
from streams.references import addressed, reference_key

from ..builders import AUTHORITY, SHIPMENT, booking_doc, carrier_of, hub_event, state_of, tracking_doc


def test_only_a_business_transaction_carries_a_type() -> None:
    typed = CarrierReference(kind="business_transaction", value="DO-1", type="urn:epcglobal:cbv:btt:desadv")
    assert typed.type == "urn:epcglobal:cbv:btt:desadv"
    with pytest.raises(ValidationError, match="only a business transaction carries its raw `type`"):
        CarrierReference(kind="container", value="CSQU3054383", type="EQ")


def test_the_type_does_not_change_how_a_reference_resolves_or_serialises_when_absent() -> None:
    bare = CarrierReference(kind="business_transaction", value="DO-1")
    typed = bare.model_copy(update={"type": "desadv"})
    assert reference_key(bare) == reference_key(typed) == "business_transaction:DO-1"
    assert bare.model_dump(mode="json") == {"kind": "business_transaction", "value": "DO-1"}


def test_the_record_shows_the_transactions_of_a_milestone_with_their_type() -> None:
    report = tracking_doc("departed", leg=1)
    report["references"] = [
        {"kind": "business_transaction", "value": "DO-7781", "type": "https://ref.gs1.org/cbv/BTT-desadv"},
        {"kind": "container", "value": "CSQU3054383"},
    ]
    record = project(state_of(booking_doc(), report), AUTHORITY)
    [milestone] = record.legs[0].milestones
    assert milestone.transactions == [
        CarrierReference(kind="business_transaction", value="DO-7781", type="https://ref.gs1.org/cbv/BTT-desadv")
    ]
    shown = record.model_dump(mode="json")["legs"][0]["milestones"][0]
    assert shown["transactions"] == [
        {"kind": "business_transaction", "value": "DO-7781", "type": "https://ref.gs1.org/cbv/BTT-desadv"}
    ]
    plain = project(state_of(booking_doc(), tracking_doc("departed", leg=1)), AUTHORITY)
    assert "transactions" not in plain.model_dump(mode="json")["legs"][0]["milestones"][0]


def test_an_epcis_delivery_order_reaches_the_record_with_its_raw_type() -> None:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T10:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "departing",
        "epcList": ["urn:epc:id:bic:CSQU3054383"],
        "bizTransactionList": [
            {"type": "urn:epcglobal:cbv:btt:desadv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:DO-7781"}
        ],
    }
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T10:05:00Z",
        "epcisBody": {"eventList": [event]},
    }
    [parsed] = parse_epcis(orjson.dumps(document), carrier_of(1))
    assert isinstance(parsed, TrackingEvent)
    transaction = CarrierReference(kind="business_transaction", value="DO-7781", type="urn:epcglobal:cbv:btt:desadv")
    assert transaction in parsed.references
    booking = hub_event(booking_doc())
    record = project(apply_all(state_of(), [booking, addressed(parsed, SHIPMENT)]), AUTHORITY)
    shown = [m for leg in record.legs for m in leg.milestones if m.set_by == parsed.key]
    assert [m.transactions for m in shown] == [[transaction]]

"""Outbound messages between two record versions: only the invoices, notes, payouts and claims that are new or changed.

Three legs charged USD 100.00 each, no margin: invoice revision 1 is USD 300.00 and each carrier's payout USD 100.00.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.merge import ShipmentState, apply, project
from streams.outbound import claim_messages, settlement_messages

from ..builders import AUTHORITY, MTO, SHIPMENT, Doc, booking_doc, claim_doc, envelope, hub_event, record_of, settlement_doc, state_of, tracking_doc

CHARGES = [settlement_doc([("FRT", "100.00", "USD")], leg=leg, event_id=f"chg-{leg}", occurred=10 * leg) for leg in (1, 2, 3)]
RAIL_CORRECTED = settlement_doc([("FRT", "120.00", "USD")], leg=2, event_id="chg-2", occurred=20, revised=50, recorded=50)
DAMAGE_CLAIM = f"CLM-{SHIPMENT}-damage-L3"


def payment(amount: str, *, event_id: str = "pay-1") -> Doc:
    payload: Doc = {"payment_id": event_id.upper(), "payer": "shipper.test", "amount": {"amount": amount, "currency": "USD"}}
    return envelope("payment", payload, event_id=event_id, source="shipper.test", occurred=60)


def then(state: ShipmentState, *docs: Doc) -> ShipmentState:
    for doc in docs:
        state = apply(state, hub_event(doc))
    return state


def decoded(messages: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(message) for message in messages]


def summary(messages: list[bytes]) -> list[tuple[str, str]]:
    """(kind, id) of each message: the revision number, note or payout id, or claim id."""
    ids = {"invoice": "revision", "note": "note_id", "payout": "payout_id", "claim": "claim_id"}
    return [(body["kind"], str(body[body["kind"]][ids[body["kind"]]])) for body in decoded(messages)]


def payout(carrier: str) -> tuple[str, str]:
    return ("payout", f"PAY-{SHIPMENT}-{carrier}-USD")


# --- settlement -------------------------------------------------------------------------------------------------------


def test_first_issued_invoice_announces_the_invoice_and_every_payout() -> None:
    after = record_of(booking_doc(), *CHARGES)
    assert summary(settlement_messages(None, after)) == [
        ("invoice", "1"),
        payout("carrier.rail"),
        payout("carrier.road"),
        payout("carrier.sea"),
    ]


def test_unchanged_record_version_produces_no_messages() -> None:
    state = then(state_of(booking_doc(), *CHARGES), tracking_doc("damaged", leg=3, occurred=70))
    record = project(state, AUTHORITY)
    assert record.settlement is not None and record.settlement.invoices and record.claims
    assert settlement_messages(record, record) == []
    assert claim_messages(record, record) == []
    redelivered = project(then(state, *CHARGES), AUTHORITY)
    assert redelivered == record
    assert (settlement_messages(record, redelivered), claim_messages(record, redelivered)) == ([], [])


def test_change_that_touches_no_settlement_document_produces_no_settlement_message() -> None:
    state = state_of(booking_doc(), *CHARGES)
    before, after = project(state, AUTHORITY), project(then(state, tracking_doc("departed", leg=1, occurred=12)), AUTHORITY)
    assert after.version == before.version + 1
    assert settlement_messages(before, after) == []


def test_draft_settlement_announces_nothing() -> None:
    state = state_of(booking_doc(), *CHARGES[:2])
    before = project(state, AUTHORITY)
    assert before.settlement is not None and before.settlement.status == "draft"
    assert settlement_messages(None, before) == []
    assert summary(settlement_messages(before, project(then(state, CHARGES[2]), AUTHORITY)))[0] == ("invoice", "1")


def test_no_settlement_messages_before_the_booking() -> None:
    record = record_of(*CHARGES)
    assert record.settlement is None
    assert settlement_messages(None, record) == []


def test_corrected_charge_announces_only_the_new_revision_its_note_and_the_changed_payout() -> None:
    state = state_of(booking_doc(), *CHARGES)
    before, after = project(state, AUTHORITY), project(then(state, RAIL_CORRECTED), AUTHORITY)
    assert summary(settlement_messages(before, after)) == [
        ("invoice", "2"),
        ("note", f"INV-{SHIPMENT}-r2-USD"),
        payout("carrier.rail"),
    ]
    note = decoded(settlement_messages(before, after))[1]["note"]
    assert (note["kind"], note["amount"]) == ("debit", {"amount": "20.00", "currency": "USD"})


def test_payment_in_full_announces_only_the_released_payouts() -> None:
    state = state_of(booking_doc(), *CHARGES)
    before, after = project(state, AUTHORITY), project(then(state, payment("300.00")), AUTHORITY)
    messages = decoded(settlement_messages(before, after))
    assert [(m["kind"], m["payout"]["status"], m["settlement_status"]) for m in messages] == [("payout", "released", "paid")] * 3


def test_partial_payment_changes_no_settlement_document() -> None:
    state = state_of(booking_doc(), *CHARGES)
    before, after = project(state, AUTHORITY), project(then(state, payment("100.00")), AUTHORITY)
    assert after.settlement is not None and after.settlement.status == "partially_paid"
    assert settlement_messages(before, after) == []


# --- claims -----------------------------------------------------------------------------------------------------------


def test_new_claim_is_announced() -> None:
    state = state_of(booking_doc())
    before, after = project(state, AUTHORITY), project(then(state, tracking_doc("damaged", leg=3, occurred=70, event_id="dmg-1")), AUTHORITY)
    assert summary(claim_messages(before, after)) == [("claim", DAMAGE_CLAIM)]
    assert summary(claim_messages(None, after)) == [("claim", DAMAGE_CLAIM)]


def test_claim_is_announced_again_when_new_evidence_or_the_insurer_changes_it() -> None:
    state = state_of(booking_doc(), tracking_doc("damaged", leg=3, occurred=70, event_id="dmg-1"))
    opened = project(state, AUTHORITY)
    state = then(state, tracking_doc("damaged", leg=3, occurred=75, event_id="dmg-2", location="SGSIN"))
    more_evidence = project(state, AUTHORITY)
    assert summary(claim_messages(opened, more_evidence)) == [("claim", DAMAGE_CLAIM)]
    assert decoded(claim_messages(opened, more_evidence))[0]["claim"]["evidence"] == ["carrier.sea/dmg-1", "carrier.sea/dmg-2"]

    acknowledged = project(then(state, claim_doc(DAMAGE_CLAIM, "acknowledged", event_id="ack", occurred=80)), AUTHORITY)
    [body] = decoded(claim_messages(more_evidence, acknowledged))
    assert body["claim"]["status"] == "acknowledged"


def test_only_the_changed_claim_is_announced() -> None:
    state = state_of(booking_doc(), tracking_doc("damaged", leg=3, occurred=70, event_id="dmg-1"))
    before = project(state, AUTHORITY)
    after = project(then(state, tracking_doc("shortage", leg=1, occurred=20, event_id="short-1")), AUTHORITY)
    assert summary(claim_messages(before, after)) == [("claim", f"CLM-{SHIPMENT}-shortage-L1")]


# --- the message itself -----------------------------------------------------------------------------------------------


def test_each_message_carries_kind_shipment_record_version_and_the_document() -> None:
    after = record_of(booking_doc(), *CHARGES, tracking_doc("damaged", leg=3, occurred=70))
    assert after.settlement is not None
    documents: dict[str, list[Any]] = {
        "invoice": after.settlement.invoices,
        "payout": after.settlement.payouts,
        "claim": after.claims,
    }
    bodies = decoded(settlement_messages(None, after) + claim_messages(None, after))
    assert sorted({body["kind"] for body in bodies}) == ["claim", "invoice", "payout"]
    for body in bodies:
        kind = body["kind"]
        assert (body["shipment_id"], body["record_version"], body["responsible_operator"]) == (SHIPMENT, after.version, MTO)
        assert body[kind] in [document.model_dump(mode="json") for document in documents[kind]]
        assert ("settlement_status" in body) == (kind != "claim")


def test_message_names_the_version_it_was_computed_from() -> None:
    state = state_of(booking_doc(), *CHARGES)
    first = project(state, AUTHORITY)
    second = project(then(state, RAIL_CORRECTED), AUTHORITY)
    versions = {body["record_version"] for body in decoded(settlement_messages(first, second))}
    assert versions == {second.version} and second.version == first.version + 1


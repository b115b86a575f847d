"""A carrier cannot mark its own invoice verified, nor release its held payout so: only a tax verifier that the
shipment's MTO lists in the party registry speaks for the tax authority (examples/parties.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.parties import load_parties
from schemas.events import HUB_EVENT
from streams.merge import ShipmentState, apply_all, project
from tests.unit.streams import test_invoices as one_leg

REPO = Path(__file__).resolve().parents[2]
SHIPMENT = "SHP-2026-INV-1"
RAIL = "carrier.cr-rail"


def _event(doc: dict[str, object]) -> object:
    return HUB_EVENT.validate_python(doc)


def _doc(event_type: str, event_id: str, source: str, payload: dict[str, object], at: str) -> dict[str, object]:
    return {"event_id": event_id, "source": source, "shipment_id": SHIPMENT, "event_type": event_type,
            "occurred_at": at, "recorded_at": at, "payload": payload}


def _usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


BOOKING = _doc("booking", "bkg-1", "mto.westcorridor", {
    "shipper": {"party_id": "shipper.chengdu-elec", "name": "Chengdu Electronics"},
    "consignee": {"party_id": "consignee.johor-assembly", "name": "Johor Assembly"},
    "mto": "mto.westcorridor",
    "cargo": {"description": "Electronics", "pieces": 1, "packages": 1, "gross_weight_kg": "100"},
    "declared_value": _usd("10000.00"),
    "legs": [{"sequence": 1, "mode": 2, "carrier": RAIL, "origin": "CNCKG", "destination": "CNQZH"}],
}, "2026-03-01T00:00:00Z")
CHARGES = _doc("settlement", "chg-1", RAIL, {"carrier": RAIL, "leg": 1, "charges": [{"code": "FRT", "amount": _usd("1000.00")}]},
               "2026-03-02T00:00:00Z")
PAID = _doc("payment", "pay-1", "shipper.chengdu-elec", {"payment_id": "P1", "payer": "shipper.chengdu-elec", "amount": _usd("1000.00")},
            "2026-03-03T00:00:00Z")
INVOICE = _doc("carrier_invoice", "invoice-RI-1", RAIL, {
    "invoice_number": "RI-1", "issue_date": "2026-03-02", "currency": "USD", "leg": 1,
    "seller": {"name": "China Railway Container Transport", "identifiers": [{"scheme": "0199", "value": "5493001KJTIIGC8Y1R12"}]},
    "buyer": {"name": "West Corridor Multimodal Ltd"},
    "lines": [{"line_id": "1", "description": "Rail freight", "amount": _usd("1000.00"), "tax_category": "Z"}],
    "net_total": _usd("1000.00"), "tax_total": _usd("0"),
    "tax_subtotals": [{"category": "Z", "percent": "0", "taxable": _usd("1000.00"), "tax": _usd("0")}],
    "payable": _usd("1000.00"),
}, "2026-03-02T00:00:00Z")


def _verified_by(source: str) -> dict[str, object]:
    payload = {"carrier": RAIL, "invoice_number": "RI-1", "result": "verified", "payable": _usd("1000.00")}
    return _doc("invoice_verification", f"check-{source}", source, payload, "2026-03-04T00:00:00Z")


def _holding() -> object:
    """The example registry, with the MTO holding payouts until a leg's invoice is verified."""
    registry = load_parties(REPO / "examples" / "parties.json")
    held = registry.model_copy(update={"parties": [
        p.model_copy(update={"hold_payouts_until_invoice_verified": True}) if p.party_id == "mto.westcorridor" else p
        for p in registry.parties
    ]})
    return held.authority()


def test_a_carrier_cannot_mark_its_own_invoice_verified_and_release_its_held_payout() -> None:
    authority = _holding()
    events = [_event(d) for d in (BOOKING, CHARGES, PAID, INVOICE)]

    forged = project(apply_all(ShipmentState(SHIPMENT), events + [_event(_verified_by(RAIL))]), authority)
    [invoice] = forged.carrier_invoices
    assert invoice.verification == "unverified"
    assert forged.settlement is not None and [p.status for p in forged.settlement.payouts] == ["held"]
    [refusal] = [r for r in forged.rejected if r.event == f"{RAIL}/check-{RAIL}"]
    assert refusal.kind == "not_entitled" and "not a tax verifier" in refusal.reason

    genuine = project(apply_all(ShipmentState(SHIPMENT), events + [_event(_verified_by("verifier.chinatax"))]), authority)
    assert genuine.carrier_invoices[0].verification == "verified"
    assert genuine.settlement is not None and [p.status for p in genuine.settlement.payouts] == ["released"]


def _in(currency: str, amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def test_a_payout_in_a_currency_no_verified_invoice_bills_stays_held() -> None:
    """The rail carrier bills 1000 USD and 50000 CNY but invoices (and has verified) the USD alone: the leg's payouts
    stay held; once the CNY charges are invoiced too, matched and verified, both go out."""
    authority = _holding()
    charges = _doc("settlement", "chg-1", RAIL, {"carrier": RAIL, "leg": 1, "charges": [
        {"code": "FRT", "amount": _usd("1000.00")}, {"code": "THC", "amount": _in("CNY", "50000.00")},
    ]}, "2026-03-02T00:00:00Z")
    cny_paid = _doc("payment", "pay-cny", "shipper.chengdu-elec",
                    {"payment_id": "P-CNY", "payer": "shipper.chengdu-elec", "amount": _in("CNY", "50000.00")}, "2026-03-03T00:00:00Z")
    events = [_event(d) for d in (BOOKING, charges, PAID, cny_paid, INVOICE, _verified_by("verifier.chinatax"))]
    result = project(apply_all(ShipmentState(SHIPMENT), events), authority)
    assert [(i.currency, i.match, i.verification) for i in result.carrier_invoices] == [("USD", "matched", "verified")]
    assert result.settlement is not None and result.settlement.status == "paid"
    status = {p.amount.currency: p.status for p in result.settlement.payouts}
    assert status == {"USD": "held", "CNY": "held"}, status  # a hold is the leg's: it waits for every currency

    payload = INVOICE["payload"]
    assert isinstance(payload, dict)
    cny = {**INVOICE, "event_id": "invoice-RI-2", "payload": {
        **payload, "invoice_number": "RI-2", "currency": "CNY",
        "lines": [{"line_id": "1", "description": "Terminal handling", "amount": _in("CNY", "50000.00"), "tax_category": "Z"}],
        "net_total": _in("CNY", "50000.00"), "tax_total": _in("CNY", "0"),
        "tax_subtotals": [{"category": "Z", "percent": "0", "taxable": _in("CNY", "50000.00"), "tax": _in("CNY", "0")}],
        "payable": _in("CNY", "50000.00"),
    }}
    check = _doc("invoice_verification", "check-cny", "verifier.chinatax",
                 {"carrier": RAIL, "invoice_number": "RI-2", "result": "verified", "payable": _in("CNY", "50000.00")},
                 "2026-03-04T00:00:00Z")
    both = project(apply_all(ShipmentState(SHIPMENT), events + [_event(cny), _event(check)]), authority)
    assert sorted((i.currency, i.match) for i in both.carrier_invoices) == [("CNY", "matched"), ("USD", "matched")]
    assert both.settlement is not None and [p.status for p in both.settlement.payouts] == ["released", "released"]


def test_a_verified_invoice_revised_to_what_the_charges_say_is_not_vouched_for() -> None:
    """The carrier's tax invoice RI-20 is for 500.00 + 9 % VAT; the authority verifies it. The carrier then revises the
    invoice event to 1,250.00 + 9 %, what its charges say. Bound to the number only, the verification still stood:
    matched, verified, the held payout of 1,250.00 released with a 545.00 tax invoice behind it."""
    real = one_leg.invoice_doc("RI-20", "500.00", "45.00")
    revised = one_leg.invoice_doc("RI-20", "1250.00", "112.50", revised=200)
    check = one_leg.verification_doc("RI-20", "verified", payable="545.00")
    honest = one_leg.fold(one_leg.BOOKING, one_leg.CHARGES, real, one_leg.PAID, check, hold=True)
    assert honest.settlement is not None and [p.status for p in honest.settlement.payouts] == ["held"]  # 545 != 1,250

    record = one_leg.fold(one_leg.BOOKING, one_leg.CHARGES, real, revised, one_leg.PAID, check, hold=True)
    [invoice] = record.carrier_invoices
    assert (invoice.match, invoice.verification) == ("mismatched", "verified")
    assert [m.field for m in invoice.mismatches] == ["amount"]
    assert "verified RI-20 for 545.00 USD" in invoice.mismatches[0].reason
    assert record.settlement is not None and [p.status for p in record.settlement.payouts] == ["held"]


def test_a_verified_result_must_state_what_it_verified() -> None:
    payload = {"carrier": RAIL, "invoice_number": "RI-1", "result": "verified"}
    event = _doc("invoice_verification", "check-bare", "verifier.chinatax", payload, "2026-03-04T00:00:00Z")
    with pytest.raises(ValidationError, match="amount payable"):
        HUB_EVENT.validate_python(event)

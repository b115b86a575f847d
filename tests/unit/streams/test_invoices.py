"""Carrier invoices against the ledger's charges, with worked figures; verification; the payout hold both ways."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.record import ShipmentRecord
from streams.authority import Authority, Operator
from streams.merge import ShipmentState, apply_all, project

from ..builders import MTO, Doc, booking_doc, envelope, hub_event, settlement_doc

RAIL = "carrier.rail"
VERIFIER = "verifier.tax"
ONE_LEG = [(2, RAIL, "CNCKG", "CNQZH")]
RAIL_LEI = "5493001KJTIIGC8Y1R12"


def authority(hold: bool) -> Authority:
    operator = Operator(MTO, ("SHP-TEST-",), tax_verifiers=frozenset({VERIFIER}), hold_payouts_until_invoice_verified=hold)
    return Authority.of([operator], invoice_ids=[(RAIL, frozenset({RAIL_LEI}))])


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def invoice_doc(number: str, net: str, tax: str, *, percent: str = "9", seller_id: str = RAIL_LEI, **fields: Any) -> Doc:
    payable = str(Decimal(net) + Decimal(tax))
    payload = {
        "invoice_number": number,
        "issue_date": "2026-03-05",
        "currency": "USD",
        "leg": 1,
        "seller": {"name": "China Railway Container Transport", "identifiers": [{"scheme": "0199", "value": seller_id}]},
        "buyer": {"name": "Test MTO"},
        "lines": [{"line_id": "1", "description": "Rail freight CNCKG-CNQZH", "code": "FRT", "amount": usd(net), "tax_percent": percent}],
        "net_total": usd(net),
        "tax_total": usd(tax),
        "tax_subtotals": [{"category": "S", "percent": percent, "taxable": usd(net), "tax": usd(tax)}],
        "payable": usd(payable),
    }
    fields.setdefault("source", RAIL)
    fields.setdefault("occurred", 100)
    return envelope("carrier_invoice", payload, event_id=f"invoice-{number}", **fields)


def verification_doc(
    number: str, result: str, *, source: str = VERIFIER, occurred: float = 120, event_id: str = "", payable: str = "1362.50"
) -> Doc:
    payload: Doc = {"carrier": RAIL, "invoice_number": number, "result": result}
    if result == "verified":  # what the authority verified: the invoices here are 1250.00 + 9 % VAT
        payload["payable"] = usd(payable)
    return envelope("invoice_verification", payload, event_id=event_id or f"check-{number}-{result}", source=source, occurred=occurred)


BOOKING = booking_doc(ONE_LEG)
# leg 1's charges in the ledger: 1000.00 + 250.00 = 1250.00 USD; 9 % VAT on them is 112.50
CHARGES = settlement_doc([("FRT", "1000.00", "USD"), ("THC", "250.00", "USD")], source=RAIL, occurred=50)
PAID = envelope(
    "payment", {"payment_id": "PMT-1", "payer": "shipper.test", "amount": usd("1250.00")},
    event_id="pay-1", source="shipper.test", occurred=110,
)


def fold(*docs: Doc, hold: bool = False) -> ShipmentRecord:
    return project(apply_all(ShipmentState("SHP-TEST-0001"), [hub_event(d) for d in docs]), authority(hold))


def test_an_invoice_for_the_legs_charges_with_the_right_tax_matches() -> None:
    record = fold(BOOKING, CHARGES, invoice_doc("RI-1", "1250.00", "112.50"))
    [invoice] = record.carrier_invoices
    assert (invoice.match, invoice.mismatches, invoice.verification) == ("matched", [], "unverified")
    assert invoice.payable.amount == Decimal("1362.50")


def test_a_tax_that_is_not_the_rate_of_the_taxable_amount_is_a_tax_mismatch() -> None:
    # 9 % of 1250.00 is 112.50; the carrier charged 125.00 (10 %) under a 9 % rate
    [invoice] = fold(BOOKING, CHARGES, invoice_doc("RI-2", "1250.00", "125.00")).carrier_invoices
    assert invoice.match == "mismatched"
    [mismatch] = invoice.mismatches
    assert (mismatch.field, mismatch.expected, mismatch.found) == ("tax", "112.50 USD", "125.00 USD")


def test_a_net_total_other_than_the_legs_charges_is_an_amount_mismatch() -> None:
    # 1300.00 billed against 1250.00 of charges; its own tax (9 % = 117.00) is right
    [invoice] = fold(BOOKING, CHARGES, invoice_doc("RI-3", "1300.00", "117.00")).carrier_invoices
    [mismatch] = invoice.mismatches
    assert (mismatch.field, mismatch.expected, mismatch.found) == ("amount", "1250.00 USD", "1300.00 USD")


def test_a_seller_not_registered_as_the_legs_carrier_is_an_issuer_mismatch() -> None:
    [invoice] = fold(BOOKING, CHARGES, invoice_doc("RI-4", "1250.00", "112.50", seller_id="OTHER")).carrier_invoices
    assert [(m.field, m.expected, m.found) for m in invoice.mismatches] == [("issuer", RAIL_LEI, "OTHER")]


def test_a_second_live_invoice_for_the_leg_is_a_number_mismatch_until_the_first_is_red_flushed() -> None:
    first, second = invoice_doc("RI-5", "1250.00", "112.50"), invoice_doc("RI-6", "1250.00", "112.50", occurred=101)
    both = {i.invoice_number: i for i in fold(BOOKING, CHARGES, first, second).carrier_invoices}
    assert both["RI-5"].match == "matched"
    assert [m.field for m in both["RI-6"].mismatches] == ["invoice_number"]
    flushed = fold(BOOKING, CHARGES, first, second, verification_doc("RI-5", "red_flushed"))
    after = {i.invoice_number: i for i in flushed.carrier_invoices}
    assert after["RI-5"].verification == "red_flushed" and after["RI-6"].match == "matched"


def test_red_flushed_is_final_whatever_is_said_after_it() -> None:
    docs = [BOOKING, CHARGES, invoice_doc("RI-7", "1250.00", "112.50"), verification_doc("RI-7", "red_flushed", occurred=120),
            verification_doc("RI-7", "verified", occurred=130)]
    [invoice] = fold(*docs).carrier_invoices
    assert invoice.verification == "red_flushed" and [c.result for c in invoice.checks] == ["red_flushed", "verified"]


def test_without_the_hold_a_paid_invoice_releases_the_payout_unverified() -> None:
    record = fold(BOOKING, CHARGES, invoice_doc("RI-8", "1250.00", "112.50"), PAID, hold=False)
    assert record.settlement is not None
    assert [p.status for p in record.settlement.payouts] == ["released"]


def test_with_the_hold_the_payout_waits_for_a_matched_and_verified_invoice() -> None:
    unverified = fold(BOOKING, CHARGES, invoice_doc("RI-9", "1250.00", "112.50"), PAID, hold=True)
    assert unverified.settlement is not None and unverified.settlement.status == "paid"
    assert [p.status for p in unverified.settlement.payouts] == ["held"]
    assert not any(e.entry_id.startswith("LED-PAY-") for e in unverified.settlement.ledger)  # nothing paid out

    verified = fold(BOOKING, CHARGES, invoice_doc("RI-9", "1250.00", "112.50"), PAID, verification_doc("RI-9", "verified"), hold=True)
    assert verified.settlement is not None
    assert [p.status for p in verified.settlement.payouts] == ["released"]
    assert any(e.entry_id.startswith("LED-PAY-") for e in verified.settlement.ledger)

    mismatched = fold(BOOKING, CHARGES, invoice_doc("RI-9", "1300.00", "117.00"), PAID, verification_doc("RI-9", "verified"), hold=True)
    assert mismatched.settlement is not None
    assert [p.status for p in mismatched.settlement.payouts] == ["held"]  # verified, but not for the ledger's figures


def test_a_verification_from_anyone_but_a_listed_tax_verifier_is_refused() -> None:
    record = fold(BOOKING, CHARGES, invoice_doc("RI-10", "1250.00", "112.50"), verification_doc("RI-10", "verified", source=RAIL))
    [invoice] = record.carrier_invoices
    assert invoice.verification == "unverified"
    assert [(r.event, r.kind) for r in record.rejected] == [(f"{RAIL}/check-RI-10-verified", "not_entitled")]


DOCS = [BOOKING, CHARGES, PAID, invoice_doc("RI-11", "1250.00", "112.50"), invoice_doc("RI-12", "1300.00", "117.00", occurred=90),
        verification_doc("RI-11", "verified", occurred=125), verification_doc("RI-12", "void", occurred=126),
        verification_doc("RI-11", "not_found", occurred=121)]


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(range(len(DOCS))), repeats=st.lists(st.integers(0, len(DOCS) - 1), max_size=4))
def test_the_invoices_part_is_the_same_in_any_order_with_duplicates(order: list[int], repeats: list[int]) -> None:
    expected = fold(*DOCS, hold=True)
    shuffled = fold(*[DOCS[i] for i in order + repeats], hold=True)
    assert shuffled.carrier_invoices == expected.carrier_invoices
    assert shuffled.settlement == expected.settlement

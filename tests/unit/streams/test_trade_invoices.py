"""Issue 16: the carriers' e-invoices of the example trade journey (examples/journey-trade.jsonl), matched against the
ledger's charges and verified by the tax authority the MTO lists (verifier.chinatax in examples/parties.json)."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ubl.parse import parse as parse_ubl
from schemas.events import HUB_EVENT, CarrierInvoiceEvent
from streams.merge import fold
from tests.unit.streams.test_trade import (
    AUTHORITY, REPO, SHIPMENT, Doc, by_id, paid_in_full, parsed, record, trade_docs, without,
)

HOLDING = dataclasses.replace(
    AUTHORITY,
    operators=tuple(dataclasses.replace(o, hold_payouts_until_invoice_verified=True) for o in AUTHORITY.operators),
)


def test_the_trade_journey_lists_two_verified_matching_invoices_and_one_mismatched() -> None:
    invoices = {i.invoice_number: i for i in record(trade_docs()).carrier_invoices}
    assert set(invoices) == {"CRCT-2026-0046", "OLS-2026-0461", "OLS-2026-0462"}

    # leg 1, rail: charged 900.00 USD; the invoice's net 900.00, VAT 9 % of 900.00 = 81.00, payable 981.00
    rail = invoices["CRCT-2026-0046"]
    assert (rail.carrier, rail.leg, rail.match, rail.verification) == ("carrier.cr-rail", 1, "matched", "verified")
    assert (str(rail.net_total.amount), str(rail.tax_total.amount), str(rail.payable.amount)) == ("900.00", "81.00", "981.00")
    assert rail.verification_set_by == "verifier.chinatax/chk-CRCT-2026-0046"

    # leg 2, ocean: charged 1450.00 USD; the first invoice states 1540.00 (transposed digits) and is red-flushed ...
    wrong = invoices["OLS-2026-0461"]
    assert (wrong.match, wrong.verification) == ("mismatched", "red_flushed")
    assert [(m.field, m.expected, m.found, m.reason) for m in wrong.mismatches] == [
        ("amount", "1450.00 USD", "1540.00 USD", "the net total is not leg 2's charges in USD")
    ]
    # ... and its re-issue for 1450.00 (zero-rated, tax 0.00) matches and is verified
    reissued = invoices["OLS-2026-0462"]
    assert (reissued.carrier, reissued.leg, reissued.match, reissued.verification) == (
        "carrier.oceanline", 2, "matched", "verified"
    )
    assert (str(reissued.net_total.amount), str(reissued.tax_total.amount)) == ("1450.00", "0.00")
    assert reissued.mismatches == []


def test_a_payout_waits_for_its_verified_invoice_under_the_hold_option() -> None:
    paid = paid_in_full(trade_docs())
    settlement = record(paid, HOLDING).settlement
    assert settlement is not None and settlement.status == "paid"
    assert {p.carrier: p.status for p in settlement.payouts} == {"carrier.cr-rail": "released", "carrier.oceanline": "released"}
    # without the verification of the re-issued ocean invoice, leg 2 has no matched and verified invoice: held
    unverified = record(without(paid, "chk-OLS-2026-0462"), HOLDING)
    assert unverified.settlement is not None
    held = {p.carrier: p.status for p in unverified.settlement.payouts}
    assert held == {"carrier.cr-rail": "released", "carrier.oceanline": "held"}
    # the option off: released
    plain = record(without(paid, "chk-OLS-2026-0462")).settlement
    assert plain is not None and {p.status for p in plain.payouts} == {"released"}


DOCS: list[Doc] = trade_docs()
EXPECTED = record(DOCS)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(DOCS))))
def test_the_trade_journey_folds_the_same_in_any_order(order: list[int]) -> None:
    shuffled = record([DOCS[i] for i in order])
    assert shuffled.carrier_invoices == EXPECTED.carrier_invoices
    assert shuffled.model_dump(exclude={"updated_at"}) == EXPECTED.model_dump(exclude={"updated_at"})


def test_the_rail_invoice_in_ubl_folds_as_its_canonical_json_form() -> None:
    # examples/invoices/trade-rail-leg1.xml is CRCT-2026-0046 as an EN 16931 UBL document (Peppol BIS Billing 3.0)
    [event] = parse_ubl((REPO / "examples" / "invoices" / "trade-rail-leg1.xml").read_bytes(), "carrier.cr-rail")
    assert isinstance(event, CarrierInvoiceEvent)
    others = [e for e in parsed(DOCS) if e.key != "carrier.cr-rail/invoice-CRCT-2026-0046"]
    assert len(others) == len(DOCS) - 1
    assert event == HUB_EVENT.validate_python(by_id(DOCS, "invoice-CRCT-2026-0046"))
    assert fold([*others, event], AUTHORITY)[SHIPMENT] == EXPECTED

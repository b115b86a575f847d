"""The "pay once" ledger: worked figures for issue, margin rounding, revisions with notes, payments and payouts.

The default journey has two legs: road (carrier.road, CNY) and sea (carrier.sea, USD), with the MTO's 8% margin.
    road  CNY 3,250.00 + 187.55 = 3,437.55   margin 275.004 -> 275.00   total 3,712.55
    sea   USD 1,850.00 + 212.35 = 2,062.35   margin 164.988 -> 164.99   total 2,227.34
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.base import MoneyTotal
from schemas.events import BookingEvent, BookingPayload
from schemas.record import LedgerEntry, SettlementRecord
from streams.ledger import settle
from streams.merge import ShipmentState, apply_all

from ..builders import MTO, SHIPMENT, Doc, booking_doc, envelope, hub_event, settlement_doc, when

ROAD, SEA = "carrier.road", "carrier.sea"
RECEIVABLE = "receivable:shipper:shipper.test"
REVENUE, CASH, FX, SUSPENSE = (f"{kind}:mto:{MTO}" for kind in ("revenue", "cash", "fx", "suspense"))
PAYABLE_ROAD, PAYABLE_SEA = f"payable:carrier:{ROAD}", f"payable:carrier:{SEA}"


def booking_of(legs: list[tuple[int, str, str, str]]) -> BookingPayload:
    event = hub_event(booking_doc(legs))
    assert isinstance(event, BookingEvent)
    return event.payload


TWO_LEGS = booking_of([(3, ROAD, "CNCTU", "CNCKG"), (1, SEA, "CNCKG", "SGSIN")])


def settled(*docs: Doc, booking: BookingPayload = TWO_LEGS) -> SettlementRecord:
    """Settle exactly as the merge hands copies over: every copy of every event, via the shipment state."""
    state = apply_all(ShipmentState(SHIPMENT), [hub_event(doc) for doc in docs])
    return settle(SHIPMENT, booking, [copy for key in sorted(state.copies) for copy in state.history(key)])


def road(freight: str = "3250.00", **fields: Any) -> Doc:
    fields.setdefault("occurred", 10)
    return settlement_doc([("FRT", freight, "CNY"), ("SUR", "187.55", "CNY")], leg=1, event_id="chg-road", source=ROAD, **fields)


def sea(**fields: Any) -> Doc:
    fields.setdefault("occurred", 20)
    return settlement_doc([("FRT", "1850.00", "USD"), ("BAF", "212.35", "USD")], leg=2, event_id="chg-sea", source=SEA, **fields)


def margin(percent: str = "8", fixed: list[tuple[str, str]] | None = None, *, event_id: str = "margin-1", **fields: Any) -> Doc:
    fields.setdefault("occurred", 5)
    fields.setdefault("source", MTO)
    payload = {"percent": percent, "fixed": [{"amount": a, "currency": c} for a, c in fixed or []]}
    return envelope("margin", payload, event_id=event_id, **fields)


def payment(amount: str, currency: str, *, event_id: str, settles: str | None = None, **fields: Any) -> Doc:
    fields.setdefault("occurred", 40)
    payload: Doc = {"payment_id": event_id.upper(), "payer": "shipper.test", "amount": {"amount": amount, "currency": currency}}
    if settles is not None:
        payload["settles_currency"] = settles
    return envelope("payment", payload, event_id=event_id, source="bank.test", **fields)


def rate(base: str, quote: str, value: str, *, as_of: float, event_id: str) -> Doc:
    payload = {"base": base, "quote": quote, "rate": value, "rate_source": "PBOC central parity", "as_of": when(as_of).isoformat()}
    return envelope("rate", payload, event_id=event_id, source="rates.test", occurred=as_of)


def money(**amounts: str) -> list[MoneyTotal]:
    return [MoneyTotal(amount=Decimal(amount), currency=currency) for currency, amount in sorted(amounts.items())]


def postings(record: SettlementRecord, group: str) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(account, currency) -> (debit, credit) of the entries whose id starts with `group`."""
    return {
        (e.account, e.currency): (e.debit, e.credit) for e in record.ledger if e.entry_id.startswith(f"LED-{SHIPMENT}-{group}-")
    }


def net(entries: list[LedgerEntry], account: str, currency: str) -> Decimal:
    return sum((e.debit - e.credit for e in entries if e.account == account and e.currency == currency), Decimal(0))


D = Decimal
ZERO = D(0)


# --- issue, margin and rounding -------------------------------------------------------------------------------------


def test_two_carriers_in_two_currencies_with_an_8_percent_margin_make_one_invoice() -> None:
    record = settled(margin(), road(), sea())
    assert record.status == "issued"
    assert record.missing_charges_for_legs == []
    [invoice] = record.invoices
    assert (invoice.invoice_id, invoice.revision, invoice.issued_at) == (f"INV-{SHIPMENT}", 1, when(20))
    assert invoice.carrier_charges == money(CNY="3437.55", USD="2062.35")
    assert invoice.margin == money(CNY="275.00", USD="164.99")
    assert invoice.total == money(CNY="3712.55", USD="2227.34")
    assert invoice.caused_by == [f"{ROAD}/chg-road", f"{SEA}/chg-sea", f"{MTO}/margin-1"]
    assert record.notes == []
    assert postings(record, "r1") == {
        (PAYABLE_ROAD, "CNY"): (ZERO, D("3437.55")),
        (RECEIVABLE, "CNY"): (D("3712.55"), ZERO),
        (REVENUE, "CNY"): (ZERO, D("275.00")),
        (PAYABLE_SEA, "USD"): (ZERO, D("2062.35")),
        (RECEIVABLE, "USD"): (D("2227.34"), ZERO),
        (REVENUE, "USD"): (ZERO, D("164.99")),
    }
    assert [(p.payout_id, p.carrier, p.legs, p.amount, p.status) for p in record.payouts] == [
        (f"PAY-{SHIPMENT}-{ROAD}-CNY", ROAD, [1], MoneyTotal(amount=D("3437.55"), currency="CNY"), "pending"),
        (f"PAY-{SHIPMENT}-{SEA}-USD", SEA, [2], MoneyTotal(amount=D("2062.35"), currency="USD"), "pending"),
    ]
    assert [(b.currency, b.invoiced, b.paid, b.outstanding, b.status) for b in record.balance] == [
        ("CNY", D("3712.55"), ZERO, D("3712.55"), "open"),
        ("USD", D("2227.34"), ZERO, D("2227.34"), "open"),
    ]


def test_margin_rounds_half_up_to_each_currencys_minor_unit() -> None:
    three_legs = booking_of([(3, ROAD, "CNCTU", "CNCKG"), (2, "carrier.rail", "CNCKG", "CNQZH"), (1, SEA, "CNQZH", "SGSIN")])
    record = settled(
        margin("12.5"),
        settlement_doc([("FRT", "12348", "JPY")], leg=1, event_id="chg-1", source=ROAD, occurred=10),  # 1,543.5 -> 1,544 (0 decimals)
        settlement_doc([("FRT", "10.12", "USD")], leg=2, event_id="chg-2", source="carrier.rail", occurred=10),  # 1.265 -> 1.27
        settlement_doc([("FRT", "100.004", "KWD")], leg=3, event_id="chg-3", source=SEA, occurred=10),  # 12.5005 -> 12.501 (3 decimals)
        booking=three_legs,
    )
    [invoice] = record.invoices
    assert invoice.margin == money(JPY="1544", KWD="12.501", USD="1.27")
    assert [str(m.amount) for m in invoice.margin] == ["1544", "12.501", "1.27"]
    assert invoice.total == money(JPY="13892", KWD="112.505", USD="11.39")


def test_fixed_margin_and_the_mtos_journey_charges_are_mto_revenue_not_payouts() -> None:
    journey_fee = settlement_doc([("DOC", "50.00", "USD")], leg=None, event_id="chg-mto", source=MTO, occurred=1)
    record = settled(margin("8", [("25.00", "EUR")]), journey_fee, road(), sea())
    [invoice] = record.invoices
    assert invoice.carrier_charges == money(CNY="3437.55", EUR="0", USD="2062.35")
    assert invoice.margin == money(CNY="275.00", EUR="25.00", USD="214.99")
    assert invoice.total == money(CNY="3712.55", EUR="25.00", USD="2277.34")
    assert [p.carrier for p in record.payouts] == [ROAD, SEA]
    assert postings(record, "r1")[(REVENUE, "EUR")] == (ZERO, D("25.00"))


def test_no_margin_event_means_no_margin() -> None:
    [invoice] = settled(road(), sea()).invoices
    assert invoice.margin == money(CNY="0", USD="0")
    assert invoice.total == money(CNY="3437.55", USD="2062.35")


# --- which charges count --------------------------------------------------------------------------------------------


def test_the_invoice_is_a_draft_until_every_leg_has_charges() -> None:
    early = payment("1000.00", "USD", event_id="pay-early", occurred=15)
    draft = settled(margin(), road(), early)
    assert draft.status == "draft"
    assert draft.missing_charges_for_legs == [2]
    assert (draft.invoices, draft.notes, draft.balance, draft.payouts) == ([], [], [], [])
    [pending] = draft.payments
    assert pending.status == "unallocated"
    assert pending.reason == "the invoice is not issued yet: legs [2] have no charges"
    assert postings(draft, "pmt-bank.test/pay-early") == {(CASH, "USD"): (D("1000.00"), ZERO), (SUSPENSE, "USD"): (ZERO, D("1000.00"))}

    issued = settled(margin(), road(), early, sea())
    assert issued.status == "partially_paid"
    assert issued.payments[0].status == "applied"
    assert issued.balance[1].outstanding == D("1227.34")


def test_charges_from_a_carrier_not_assigned_to_the_leg_do_not_count() -> None:
    by_rail = settlement_doc([("FRT", "999.00", "CNY")], leg=1, event_id="chg-rail", source="carrier.rail")
    no_such_leg = settlement_doc([("FRT", "999.00", "USD")], leg=3, event_id="chg-sea-3", source=SEA)
    no_leg = settlement_doc([("FRT", "999.00", "CNY")], leg=None, event_id="chg-road-any", source=ROAD)
    draft = settled(margin(), by_rail, no_such_leg, no_leg, sea())
    assert draft.status == "draft"
    assert draft.missing_charges_for_legs == [1]
    [invoice] = settled(margin(), by_rail, no_such_leg, no_leg, road(), sea()).invoices
    assert invoice.total == money(CNY="3712.55", USD="2227.34")


# --- revisions and notes --------------------------------------------------------------------------------------------


def test_a_re_rated_road_leg_makes_revision_2_with_a_credit_note_of_exactly_the_difference() -> None:
    # CNY 3,012.45 + 187.55 = 3,200.00; margin 256.00; total 3,456.00, i.e. 256.55 less than 3,712.55
    record = settled(margin(), road(), sea(), road("3012.45", revised=30))
    first, second = record.invoices
    assert (second.revision, second.issued_at, second.caused_by) == (2, when(30), [f"{ROAD}/chg-road"])
    assert second.total == money(CNY="3456.00", USD="2227.34")
    assert second.margin == money(CNY="256.00", USD="164.99")
    [note] = record.notes
    assert (note.note_id, note.kind, note.to_revision) == (f"INV-{SHIPMENT}-r2-CNY", "credit", 2)
    assert note.amount == MoneyTotal(amount=D("256.55"), currency="CNY")
    assert note.caused_by == [f"{ROAD}/chg-road"]
    assert postings(record, "r2") == {
        (PAYABLE_ROAD, "CNY"): (D("237.55"), ZERO),
        (RECEIVABLE, "CNY"): (ZERO, D("256.55")),
        (REVENUE, "CNY"): (D("19.00"), ZERO),
    }
    assert first.total == money(CNY="3712.55", USD="2227.34")  # the first issue is kept as it was
    assert record.payouts[0].amount == MoneyTotal(amount=D("3200.00"), currency="CNY")


def test_a_raised_charge_makes_a_debit_note() -> None:
    # CNY 3,500.00 + 187.55 = 3,687.55; margin 295.004 -> 295.00; total 3,982.55, i.e. 270.00 more
    record = settled(margin(), road(), sea(), road("3500.00", revised=30))
    [note] = record.notes
    assert (note.kind, note.amount) == ("debit", MoneyTotal(amount=D("270.00"), currency="CNY"))
    assert record.invoices[-1].total == money(CNY="3982.55", USD="2227.34")


def test_a_revision_before_issue_makes_no_note() -> None:
    record = settled(margin(), road(), road("3012.45", revised=15), sea())
    assert len(record.invoices) == 1
    assert record.notes == []
    assert record.invoices[0].total == money(CNY="3456.00", USD="2227.34")


def test_a_margin_change_after_issue_is_a_revision_too() -> None:
    record = settled(margin(), road(), sea(), margin("10", revised=50))
    assert record.invoices[-1].margin == money(CNY="343.76", USD="206.24")  # 343.755 and 206.235, half up
    assert [(n.note_id, n.kind, n.amount.amount) for n in record.notes] == [
        (f"INV-{SHIPMENT}-r2-CNY", "debit", D("68.76")),
        (f"INV-{SHIPMENT}-r2-USD", "debit", D("41.25")),
    ]


def test_a_retracted_charge_after_issue_keeps_the_invoice_issued_with_a_lower_revision() -> None:
    retraction = road(revised=40, retracted=True)
    record = settled(margin(), road(), sea(), retraction)
    assert record.status == "issued"
    assert record.missing_charges_for_legs == [1]
    assert record.invoices[-1].total == money(USD="2227.34")
    [note] = record.notes
    assert (note.kind, note.amount) == ("credit", MoneyTotal(amount=D("3712.55"), currency="CNY"))
    assert net(record.ledger, RECEIVABLE, "CNY") == ZERO
    assert [p.carrier for p in record.payouts] == [SEA]


def test_a_change_that_leaves_the_totals_equal_makes_no_revision() -> None:
    relabelled = settlement_doc(
        [("FRT", "3250.00", "CNY"), ("FSC", "187.55", "CNY")], leg=1, event_id="chg-road", source=ROAD, occurred=10, revised=30
    )
    record = settled(margin(), road(), sea(), relabelled)
    assert len(record.invoices) == 1
    assert [e for e in record.ledger if "-adj-" in e.entry_id] == []


def test_money_moved_from_a_carrier_to_the_mto_without_changing_the_total_is_reallocated_not_reinvoiced() -> None:
    # road down 100.00 (margin 275.00 -> 267.00); the MTO's own fee of 108.00 at the same instant: total unchanged
    cheaper = road("3150.00", revised=30)
    fee = settlement_doc([("DOC", "108.00", "CNY")], leg=None, event_id="chg-mto", source=MTO, occurred=30)
    record = settled(margin(), road(), sea(), cheaper, fee)
    assert len(record.invoices) == 1 and record.notes == []
    assert postings(record, f"adj-{when(30).isoformat()}") == {
        (PAYABLE_ROAD, "CNY"): (D("100.00"), ZERO),
        (REVENUE, "CNY"): (ZERO, D("100.00")),
    }
    assert record.payouts[0].amount == MoneyTotal(amount=D("3337.55"), currency="CNY")


# --- payments and payouts -------------------------------------------------------------------------------------------


def test_a_partial_payment_leaves_the_rest_outstanding_and_payouts_pending() -> None:
    record = settled(margin(), road(), sea(), payment("1000.00", "USD", event_id="pay-1"))
    assert record.status == "partially_paid"
    assert [(b.currency, b.paid, b.outstanding, b.status) for b in record.balance] == [
        ("CNY", ZERO, D("3712.55"), "open"),
        ("USD", D("1000.00"), D("1227.34"), "partially_paid"),
    ]
    assert {p.status for p in record.payouts} == {"pending"}
    assert postings(record, "pmt-bank.test/pay-1") == {(CASH, "USD"): (D("1000.00"), ZERO), (RECEIVABLE, "USD"): (ZERO, D("1000.00"))}


def test_paying_exactly_releases_the_payouts() -> None:
    record = settled(
        margin(), road(), sea(), payment("3712.55", "CNY", event_id="pay-cny"), payment("2227.34", "USD", event_id="pay-usd")
    )
    assert record.status == "paid"
    assert {(b.status, b.outstanding) for b in record.balance} == {("paid", ZERO)}
    assert {p.status for p in record.payouts} == {"released"}
    payout = f"LED-PAY-{SHIPMENT}-{ROAD}-CNY-"
    assert {(e.account, e.debit, e.credit) for e in record.ledger if e.entry_id.startswith(payout)} == {
        (PAYABLE_ROAD, D("3437.55"), ZERO),
        (CASH, ZERO, D("3437.55")),
    }
    assert net(record.ledger, RECEIVABLE, "CNY") == ZERO
    assert net(record.ledger, PAYABLE_SEA, "USD") == ZERO
    assert net(record.ledger, CASH, "USD") == D("164.99")  # what stays with the MTO is its margin


def test_an_overpayment_is_visible_per_currency() -> None:
    record = settled(
        margin(), road(), sea(), payment("3712.55", "CNY", event_id="pay-cny"), payment("2300.00", "USD", event_id="pay-usd")
    )
    assert record.status == "overpaid"
    assert [(b.currency, b.outstanding, b.status) for b in record.balance] == [("CNY", ZERO, "paid"), ("USD", D("-72.66"), "overpaid")]
    assert {p.status for p in record.payouts} == {"released"}
    assert net(record.ledger, RECEIVABLE, "USD") == D("-72.66")


def test_a_cny_payment_settles_the_usd_line_through_a_rate_event() -> None:
    rates = [
        rate("CNY", "USD", "0.1370", as_of=1, event_id="rate-old"),
        rate("CNY", "USD", "0.1380", as_of=35, event_id="rate-used"),
        rate("CNY", "USD", "0.1500", as_of=45, event_id="rate-after-payment"),
    ]
    record = settled(margin(), road(), sea(), *rates, payment("7000.00", "CNY", event_id="pay-fx", settles="USD"))
    [paid] = record.payments
    assert paid.status == "applied"
    assert paid.applied == MoneyTotal(amount=D("966.00"), currency="USD")  # 7,000.00 x 0.1380
    assert (paid.rate, paid.rate_set_by) == (D("0.1380"), "rates.test/rate-used")
    assert postings(record, "pmt-bank.test/pay-fx") == {
        (CASH, "CNY"): (D("7000.00"), ZERO),
        (FX, "CNY"): (ZERO, D("7000.00")),
        (FX, "USD"): (D("966.00"), ZERO),
        (RECEIVABLE, "USD"): (ZERO, D("966.00")),
    }
    assert [(b.currency, b.paid) for b in record.balance] == [("CNY", ZERO), ("USD", D("966.00"))]


def test_a_rate_stated_the_other_way_round_divides() -> None:
    record = settled(
        margin(), road(), sea(), rate("USD", "CNY", "7.1", as_of=30, event_id="usd-cny"), payment("7000.00", "CNY", event_id="pay-fx", settles="USD")
    )
    [paid] = record.payments
    assert paid.applied == MoneyTotal(amount=D("985.92"), currency="USD")  # 7,000.00 / 7.1 = 985.915..., half up
    assert (paid.rate, paid.rate_set_by) == (D("7.1"), "rates.test/usd-cny")


def test_a_payment_without_a_usable_rate_is_unallocated_with_its_reason() -> None:
    later_rate = rate("CNY", "USD", "0.1380", as_of=45, event_id="too-late")
    record = settled(
        margin(), road(), sea(), later_rate,
        payment("7000.00", "CNY", event_id="pay-no-rate", settles="USD"),
        payment("500.00", "EUR", event_id="pay-eur"),
        payment("500.00", "USD", event_id="pay-gbp-line", settles="GBP"),
    )  # fmt: skip
    reasons = {p.set_by: (p.status, p.applied, p.reason) for p in record.payments}
    assert reasons == {
        "bank.test/pay-no-rate": ("unallocated", None, "no rate event between CNY and USD as of 2026-03-02T16:00:00+00:00"),
        "bank.test/pay-eur": ("unallocated", None, "EUR is not an invoice currency (CNY, USD) and the payment names no settles_currency"),
        "bank.test/pay-gbp-line": ("unallocated", None, "settles_currency GBP is not an invoice currency (CNY, USD)"),
    }
    assert record.status == "issued"
    assert postings(record, "pmt-bank.test/pay-eur") == {(CASH, "EUR"): (D("500.00"), ZERO), (SUSPENSE, "EUR"): (ZERO, D("500.00"))}


def test_a_retracted_payment_no_longer_counts() -> None:
    paid = payment("2227.34", "USD", event_id="pay-usd")
    record = settled(margin(), road(), sea(), paid, payment("2227.34", "USD", event_id="pay-usd", revised=50, retracted=True))
    assert record.payments == []
    assert record.status == "issued"


# --- purity ---------------------------------------------------------------------------------------------------------


def test_the_settlement_does_not_depend_on_arrival_order() -> None:
    docs = [margin(), road(), sea(), road("3012.45", revised=30), payment("1000.00", "USD", event_id="pay-1")]
    forward = settled(*docs)
    backward = settled(*reversed(docs))
    assert forward == backward
    assert forward.model_dump_json() == backward.model_dump_json()

"""Invariants of the "pay once" ledger on generated journeys: the ledger balances per currency, every invoice
revision adds up, the notes lead from the first revision to the current one, the invoice is what the payouts and
the margin add up to, and neither arrival order nor duplicates change anything.

A journey here: a booking of 1-4 legs with random carriers (now and then the MTO itself), charge events per leg in
1-3 currencies (some from the wrong carrier or for a leg the booking lacks), the MTO's journey charges and margin
events, payments (some in other currencies, with rate events either way round); every event may be revised (same
source and event_id, later `revised_at`, new content) or retracted. Copies reach `settle` as the merge hands them
over: through `apply` into a `ShipmentState`, then `history(key)` for every key.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import BookingEvent, BookingPayload, HubEvent
from schemas.record import SettlementRecord
from streams.copies import Copy
from streams.ledger import settle
from streams.merge import ShipmentState, apply_all

from ..builders import MTO, SHIPMENT, Doc, at, booking_doc, envelope, hub_event

PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
CARRIERS = ["carrier.a", "carrier.b", "carrier.c", MTO]
CURRENCIES = ["USD", "CNY", "EUR", "JPY", "KWD"]
PLACES = ["CNCTU", "CNCKG", "CNQZH", "SGSIN", "DEHAM"]
RECEIVABLE = "receivable:shipper:shipper.test"
REVENUE = f"revenue:mto:{MTO}"

hours = st.integers(0, 48)  # few distinct instants, so ties are common
later_hours = st.integers(49, 96)
amounts = st.one_of(
    st.decimals(min_value=0, max_value=250_000, places=2),
    st.decimals(min_value=-500, max_value=500, places=2),  # discounts and credits happen
).map(str)
currencies = st.sampled_from(CURRENCIES)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=200, places=4).map(str)


def _charges(draw: st.DrawFn) -> list[Doc]:
    used = draw(st.lists(currencies, min_size=1, max_size=3, unique=True))
    return [
        {"code": draw(st.sampled_from(["FRT", "BAF", "THC"])), "amount": {"amount": draw(amounts), "currency": currency}}
        for currency in used
        for _ in range(draw(st.integers(1, 2)))
    ]


def _margin(draw: st.DrawFn) -> Doc:
    fixed = draw(st.lists(st.tuples(amounts, currencies), max_size=2))
    percent = str(draw(st.decimals(min_value=0, max_value=30, places=3)))
    return {"percent": percent, "fixed": [{"amount": a, "currency": c} for a, c in fixed]}


def _payment(draw: st.DrawFn, payment_id: str, owed: dict[str, Decimal]) -> Doc:
    """A payment: often of what is owed in one invoice currency (so invoices get paid), else any amount."""
    of_what_is_owed = draw(st.booleans())
    if owed and of_what_is_owed:
        currency, amount = draw(st.sampled_from(sorted(owed.items())))
        amount = draw(st.sampled_from([amount, amount, amount / 2, amount + 1])).quantize(Decimal("0.01"))
    else:
        currency, amount = draw(currencies), Decimal(draw(amounts))
    payload: Doc = {"payment_id": payment_id, "payer": "shipper.test", "amount": {"amount": str(amount), "currency": currency}}
    if draw(st.integers(0, 3)) == 0:
        payload["settles_currency"] = draw(st.sampled_from(sorted(owed) or CURRENCIES))
    return payload


def _rate(draw: st.DrawFn, pair: list[str] | None = None) -> Doc:
    base, quote = pair or draw(st.lists(currencies, min_size=2, max_size=2, unique=True))
    return {"base": base, "quote": quote, "rate": draw(rates), "rate_source": "test fixing", "as_of": at(draw(hours))}


def _copies(draw: st.DrawFn, event_type: str, event_id: str, source: str, payload: Callable[[], Doc]) -> list[Doc]:
    """An event's first copy, then maybe revisions (later `revised_at`, new content) and maybe a retraction."""
    first = envelope(event_type, payload(), event_id=event_id, source=source, occurred=draw(hours), recorded=draw(hours))
    copies = [first]
    for revised in sorted(draw(st.lists(later_hours, max_size=2, unique=True))):
        copies.append({**first, "payload": payload(), "revised_at": at(revised)})
    if draw(st.integers(0, 5)) == 0:
        retraction = {**draw(st.sampled_from(copies)), "retracted": True}
        retraction["revised_at"] = at(draw(later_hours))
        copies.append(retraction)
    return copies


@st.composite
def journeys(draw: st.DrawFn) -> tuple[BookingPayload, list[Doc]]:
    legs = draw(st.integers(1, 4))
    carriers = [draw(st.sampled_from(CARRIERS)) for _ in range(legs)]
    booked = hub_event(booking_doc([(3, carrier, PLACES[n], PLACES[n + 1]) for n, carrier in enumerate(carriers)]))
    assert isinstance(booked, BookingEvent)

    docs: list[Doc] = []
    charged: list[int | None] = [leg for leg in range(1, legs + 1) for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 2])))]
    strays: list[int | None] = [None] * draw(st.sampled_from([0, 0, 1, 2]))  # the MTO's journey charge, or charges that must not count
    for number, leg in enumerate(charged + strays):
        source = carriers[leg - 1] if leg else draw(st.sampled_from(CARRIERS))
        if leg is None:
            leg = draw(st.sampled_from([None, 1, 5]))
        docs += _copies(draw, "settlement", f"chg-{number}", source, lambda: {"carrier": source, "charges": _charges(draw), "leg": leg})
    for number in range(draw(st.integers(0, 2))):
        source = MTO if draw(st.integers(0, 4)) else "carrier.a"
        docs += _copies(draw, "margin", f"margin-{number}", source, lambda: _margin(draw))

    before = settle(SHIPMENT, booked.payload, history_of(events_of(docs)))
    owed = {line.currency: line.outstanding for line in before.balance}
    if owed and draw(st.integers(0, 2)) == 0:  # the shipper pays every line in full, as most do
        docs += [
            envelope("payment", {"payment_id": f"FULL-{c}", "payer": "shipper.test", "amount": {"amount": str(a), "currency": c}},
                     event_id=f"full-{c}", source="bank.test", occurred=draw(hours))
            for c, a in sorted(owed.items())
        ]  # fmt: skip
    for number in range(draw(st.integers(0, 3))):
        payments = _copies(draw, "payment", f"pay-{number}", "bank.test", lambda: _payment(draw, f"PAY-{number}", owed))
        docs += payments
        paid = payments[-1]["payload"]
        settles, currency = paid.get("settles_currency"), paid["amount"]["currency"]
        if settles not in (None, currency) and draw(st.integers(0, 3)):  # mostly a rate for it, either way round
            pair = draw(st.permutations([currency, settles]))
            docs += _copies(draw, "rate", f"rate-for-{number}", "rates.test", lambda: _rate(draw, pair))
    for number in range(draw(st.integers(0, 2))):
        docs += _copies(draw, "rate", f"rate-{number}", "rates.test", lambda: _rate(draw))
    return booked.payload, docs


def history_of(events: list[HubEvent]) -> list[Copy]:
    state = apply_all(ShipmentState(SHIPMENT), events)
    return [copy for key in sorted(state.copies) for copy in state.history(key)]


def events_of(docs: list[Doc]) -> list[HubEvent]:
    return [hub_event(doc) for doc in docs]


def per_currency(pairs: list[tuple[str, Decimal]]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for currency, amount in pairs:
        sums[currency] += amount
    return {currency: amount for currency, amount in sums.items() if amount != 0}


def invoice_net(record: SettlementRecord, account_prefix: str) -> dict[str, Decimal]:
    """Credit minus debit on the invoice postings (revisions and reallocations) of accounts starting with the prefix."""
    invoice_entries = [e for e in record.ledger if f"LED-{SHIPMENT}-r" in e.entry_id or f"LED-{SHIPMENT}-adj-" in e.entry_id]
    return per_currency([(e.currency, e.credit - e.debit) for e in invoice_entries if e.account.startswith(account_prefix)])


# --- (a) balance ----------------------------------------------------------------------------------------------------


@PROPERTY
@given(journey=journeys())
def test_every_currency_balances_and_no_side_is_negative(journey: tuple[BookingPayload, list[Doc]]) -> None:
    booking, docs = journey
    record = settle(SHIPMENT, booking, history_of(events_of(docs)))
    debits = per_currency([(e.currency, e.debit) for e in record.ledger])
    credits = per_currency([(e.currency, e.credit) for e in record.ledger])
    assert debits == credits
    for entry in record.ledger:
        assert entry.debit >= 0 and entry.credit >= 0
        assert (entry.debit == 0) != (entry.credit == 0), entry
    assert len({e.entry_id for e in record.ledger}) == len(record.ledger)


# --- (b), (c) and pay once ------------------------------------------------------------------------------------------


@PROPERTY
@given(journey=journeys())
def test_revisions_add_up_and_notes_lead_from_the_first_to_the_current(journey: tuple[BookingPayload, list[Doc]]) -> None:
    booking, docs = journey
    record = settle(SHIPMENT, booking, history_of(events_of(docs)))
    if record.status == "draft":
        assert record.missing_charges_for_legs and not record.invoices and not record.payouts
        return
    for invoice in record.invoices:
        carrier = {m.currency: m.amount for m in invoice.carrier_charges}
        margin = {m.currency: m.amount for m in invoice.margin}
        total = {m.currency: m.amount for m in invoice.total}
        assert set(carrier) == set(margin) == set(total)
        assert all(total[c] == carrier[c] + margin[c] for c in total)
    assert [i.revision for i in record.invoices] == list(range(1, len(record.invoices) + 1))

    first, current = record.invoices[0], record.invoices[-1]
    change = per_currency([(m.currency, m.amount) for m in current.total] + [(m.currency, -m.amount) for m in first.total])
    notes = per_currency([(n.amount.currency, n.amount.amount if n.kind == "debit" else -n.amount.amount) for n in record.notes])
    assert notes == change
    assert all(n.amount.amount > 0 for n in record.notes)

    # pay once: per currency, the invoice is the carriers' payouts plus the MTO's margin
    invoiced = per_currency([(m.currency, m.amount) for m in current.total])
    payouts = per_currency([(p.amount.currency, p.amount.amount) for p in record.payouts])
    margin_posted = invoice_net(record, REVENUE)
    assert invoiced == per_currency(list(payouts.items()) + list(margin_posted.items()))
    assert {c: -a for c, a in invoice_net(record, RECEIVABLE).items()} == invoiced

    for line in record.balance:
        assert line.outstanding == line.invoiced - line.paid
    released = record.status in ("paid", "overpaid")
    assert all(p.status == ("released" if released else "pending") for p in record.payouts)


# --- (d) order and duplicates ---------------------------------------------------------------------------------------


@PROPERTY
@given(journey=journeys(), data=st.data())
def test_any_order_and_any_duplicates_give_the_same_settlement(journey: tuple[BookingPayload, list[Doc]], data: st.DataObject) -> None:
    booking, docs = journey
    events = events_of(docs)
    copies = history_of(events)
    expected = settle(SHIPMENT, booking, copies)

    shuffled_copies = data.draw(st.permutations(copies), label="copies order")
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="duplicates") if events else []
    arrival = data.draw(st.permutations(events + duplicates), label="arrival order")
    for result in (settle(SHIPMENT, booking, shuffled_copies), settle(SHIPMENT, booking, history_of(arrival))):
        assert result == expected
        assert result.model_dump_json() == expected.model_dump_json()

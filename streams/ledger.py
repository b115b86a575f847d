"""The "pay once" ledger: one invoice to the shipper, payouts to the carriers, kept as a double-entry ledger.

`settle` is a pure function of the booking and every copy the hub holds (winners and superseded) of the shipment's
settlement, margin, payment and rate events. It reads no clock and no arrival order: the same set of copies, in any
order and with any duplicates, gives the same record. Money is Decimal throughout; rounding goes through exact
fractions, so no binary float and no context precision ever touches an amount.

Decisions, where the issue is silent:

- Charges that count: a settlement event naming leg n whose source is the carrier the booking assigns to leg n
  (that may be the MTO itself), and the MTO's own journey-level charges (source = booking MTO, no leg). Anything
  else (another carrier, a leg the booking lacks, a carrier's charges naming no leg) is left out. Attribution is by
  the event's `source` (its identity), not by the payload's `carrier` field.
- Timeline: a copy takes effect at `revised_at or recorded_at`. Copies taking effect at the same instant form one
  change point (ordering them by fingerprint would invent an order the data does not have). At a change point the
  active copy of each event is its highest-rank copy already in effect; a retracted active copy means the event is
  gone. Payments and rates are not change points: they never alter what is invoiced.
- Issue: revision 1 is issued at the first change point where every leg has an active carrier charge event, and
  cites every event it is built from. Before that the settlement is a draft without invoice, notes or payouts.
  Once issued it stays issued: if a leg later loses its charges, a new revision shows the lower total and
  `missing_charges_for_legs` names the leg again.
- Revisions: a later change point whose per-currency totals differ from the current revision's (a currency with no
  line counts as zero) makes revision n+1, citing the events whose active copy changed there, and one note per
  currency whose total changed: credit if it went down, debit if up, for the absolute difference.
- Margin: the active margin event from the MTO with the greatest `occurred_at` (event key breaks ties); per
  currency, carriers' charges x percent / 100 rounded half-up to the currency's minor unit, plus the fixed
  amounts and the MTO's journey charges. Without a margin event the margin is the MTO's journey charges alone.
- Equal totals, new split: a change that moves money between carriers, or between carriers and the MTO, without
  changing what the shipper owes makes no revision (the issue says so). The ledger re-allocates the payables and
  revenue at that point (entries `adj-<time>`), and payouts follow the active charges, so the ledger always equals
  the active figures even when the current revision's carrier/margin split is older.
- Payments: every active payment counts against the current (latest) revision, wherever it sits on the timeline.
  A payment settles `settles_currency` when it names one, else its own currency; the settled currency must be an
  invoice currency (an explicit `settles_currency` is the payer's word and is not second-guessed, even when the
  payment's own currency is on the invoice too). Settling another currency needs a rate event between the two,
  either direction, with the greatest `as_of` not after the payment's `occurred_at` (event key breaks ties). The record keeps the rate as the
  rate event states it (1 base = rate quote); `rate_set_by` says which event, hence which direction. A payment that
  cannot be applied (no invoice yet, foreign currency without `settles_currency` or rate) is `unallocated` with its
  reason and sits in suspense. The payer need not be the shipper: the receivable is the shipper's either way.
- Balance per invoice currency: outstanding == 0 is paid (an invoice line of zero is paid), < 0 overpaid, else open
  if nothing was paid, partially paid otherwise. The settlement is paid when every line is paid or overpaid
  (overpaid if any is), partially paid when anything was paid, else issued; an invoice without lines stays issued.
- Payouts: per carrier and currency, the carrier's active counted charges and the legs they are for; released once
  the settlement is paid or overpaid. A carrier's net credit in a currency counts as zero: it credits at most its
  own charges, never the other carriers' or the MTO's money.
- Ledger: every entry has one non-negative side. Invoice postings are the change of each account's balance
  (receivable, payable per carrier, MTO revenue) between change points, so the invoice entries always add up to the
  active figures; then the payments (a converted one through the MTO's fx account), then released payouts. Zero
  amounts are not posted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, Literal, Mapping, Sequence

from schemas.base import MoneyTotal
from schemas.events import BookingPayload, MarginEvent, PaymentEvent, RateEvent, SettlementEvent
from schemas.record import BalanceLine, InvoiceRevision, LedgerEntry, Note, PaymentRecord, Payout, SettlementRecord
from streams.copies import Copy

# ISO 4217 minor units, where they differ from the usual 2 decimals.
MINOR_UNITS: Mapping[str, int] = {
    **dict.fromkeys(
        ["JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "XPF", "KMF", "GNF", "PYG", "RWF", "VUV", "BIF", "DJF"], 0
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
DEFAULT_MINOR_UNITS = 2

InvoiceEvent = SettlementEvent | MarginEvent
SettlementStatus = Literal["draft", "issued", "partially_paid", "paid", "overpaid"]
LineStatus = Literal["open", "partially_paid", "paid", "overpaid"]
Balances = dict[tuple[str, str], Decimal]  # (account, currency) -> debit minus credit


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, DEFAULT_MINOR_UNITS)


def round_minor(value: Fraction, currency: str) -> Decimal:
    """`value` rounded half-up (away from zero on a tie) to the currency's minor unit, computed exactly."""
    places = minor_units(currency)
    scaled = abs(value) * 10**places
    units = int(scaled + Fraction(1, 2))  # floor, since the value is non-negative
    return Decimal(-units if value < 0 else units).scaleb(-places)


# --- what the active events add up to -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """The invoice as the events active at one moment make it."""

    payable: Mapping[tuple[str, str], Decimal]  # (carrier, currency) -> the carrier's charges
    payable_legs: Mapping[tuple[str, str], frozenset[int]]
    payable_by: Mapping[tuple[str, str], frozenset[str]]
    carrier_charges: Mapping[str, Decimal]
    margin: Mapping[str, Decimal]
    charged_legs: frozenset[int]
    counted: tuple[str, ...]  # keys of the events the figures are built from

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.carrier_charges) | set(self.margin))

    def total(self, currency: str) -> Decimal:
        return self.carrier_charges.get(currency, Decimal(0)) + self.margin.get(currency, Decimal(0))

    def totals(self) -> dict[str, Decimal]:
        """Non-zero totals per currency: what the shipper owes, for comparing revisions."""
        return {c: self.total(c) for c in self.currencies if self.total(c) != 0}


def _leg_charged(event: SettlementEvent, booking: BookingPayload) -> int | None:
    """The leg a settlement event charges for, when its source is the carrier the booking assigns to it."""
    leg = event.payload.leg
    if leg is not None and leg <= len(booking.legs) and booking.legs[leg - 1].carrier == event.source:
        return leg
    return None


def _counts(event: InvoiceEvent, booking: BookingPayload) -> bool:
    if isinstance(event, MarginEvent):
        return event.source == booking.mto
    journey = event.payload.leg is None and event.source == booking.mto
    return journey or _leg_charged(event, booking) is not None


def _figures(live: Iterable[InvoiceEvent], booking: BookingPayload) -> Figures:
    payable: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    legs: dict[tuple[str, str], set[int]] = defaultdict(set)
    by: dict[tuple[str, str], set[str]] = defaultdict(set)
    journey: dict[str, Decimal] = defaultdict(Decimal)
    counted: set[str] = set()
    margins: list[MarginEvent] = []
    for event in live:
        if not _counts(event, booking):
            continue
        if isinstance(event, MarginEvent):
            margins.append(event)
            continue
        counted.add(event.key)
        leg = _leg_charged(event, booking)
        for line in event.payload.charges:
            money = line.amount
            if leg is None:
                journey[money.currency] += money.amount
            else:
                slot = (event.source, money.currency)
                payable[slot] += money.amount
                legs[slot].add(leg)
                by[slot].add(event.key)
    for slot, amount in payable.items():
        # a carrier credits at most its own charges in a currency: a credit beyond them would be paid out of the
        # other carriers' and the MTO's money (the shipper's invoice paid, and every payout released, without a
        # payment); only the MTO's own journey charges may take the invoice below zero
        payable[slot] = max(amount, Decimal(0))
    carrier: dict[str, Decimal] = defaultdict(Decimal)
    for (_, currency), amount in payable.items():
        carrier[currency] += amount

    margin: dict[str, Decimal] = dict(journey)
    chosen = max(margins, key=lambda e: (e.occurred_at, e.key), default=None)
    if chosen is not None:
        counted.add(chosen.key)
        for fixed in chosen.payload.fixed:
            margin[fixed.currency] = margin.get(fixed.currency, Decimal(0)) + fixed.amount
        percent = Fraction(chosen.payload.percent) / 100
        for currency, base in carrier.items():
            margin[currency] = margin.get(currency, Decimal(0)) + round_minor(Fraction(base) * percent, currency)
    for currency in carrier:
        margin.setdefault(currency, round_minor(Fraction(0), currency))
    for currency in margin:
        carrier.setdefault(currency, Decimal(0))

    return Figures(
        payable=dict(payable),
        payable_legs={slot: frozenset(found) for slot, found in legs.items()},
        payable_by={slot: frozenset(keys) for slot, keys in by.items()},
        carrier_charges=dict(carrier),
        margin=margin,
        charged_legs=frozenset(leg for found in legs.values() for leg in found),
        counted=tuple(sorted(counted)),
    )


# --- the timeline of change points ----------------------------------------------------------------------------------


def _effective(copy: Copy) -> datetime:
    return copy.event.revised_at or copy.event.recorded_at


def _by_key(copies: Iterable[Copy]) -> dict[str, list[Copy]]:
    """Distinct copies per event key, highest rank first."""
    distinct = {copy.fingerprint: copy for copy in copies}
    grouped: dict[str, list[Copy]] = defaultdict(list)
    for copy in distinct.values():
        grouped[copy.event.key].append(copy)
    return {key: sorted(found, key=lambda c: c.rank, reverse=True) for key, found in sorted(grouped.items())}


@dataclass(frozen=True)
class ChangePoint:
    at: datetime
    changed: tuple[str, ...]  # keys whose active copy changed here and that count, before or after
    figures: Figures


def _timeline(history: Mapping[str, list[Copy]], booking: BookingPayload) -> list[ChangePoint]:
    points: list[ChangePoint] = []
    before: dict[str, Copy] = {}
    for at in sorted({_effective(copy) for copies in history.values() for copy in copies}):
        active: dict[str, Copy] = {}
        for key, copies in history.items():
            in_effect = next((c for c in copies if _effective(c) <= at), None)
            if in_effect is not None:
                active[key] = in_effect
        live = [c.event for c in active.values() if not c.event.retracted and isinstance(c.event, InvoiceEvent)]
        changed = []
        for key in sorted(set(active) | set(before)):
            old, new = before.get(key), active.get(key)
            if old is new:
                continue
            if any(
                c is not None and not c.event.retracted and isinstance(c.event, InvoiceEvent) and _counts(c.event, booking)
                for c in (old, new)
            ):
                changed.append(key)
        points.append(ChangePoint(at, tuple(changed), _figures(live, booking)))
        before = active
    return points


# --- ledger postings ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    receivable: str
    revenue: str
    cash: str
    fx: str
    suspense: str

    @staticmethod
    def of(booking: BookingPayload) -> Accounts:
        mto = booking.mto
        return Accounts(
            receivable=f"receivable:shipper:{booking.shipper.party_id}",
            revenue=f"revenue:mto:{mto}",
            cash=f"cash:mto:{mto}",
            fx=f"fx:mto:{mto}",
            suspense=f"suspense:mto:{mto}",
        )

    @staticmethod
    def payable(carrier: str) -> str:
        return f"payable:carrier:{carrier}"


def _entry(entry_id: str, account: str, currency: str, amount: Decimal, memo: str, caused_by: Sequence[str]) -> LedgerEntry:
    """A signed amount (debit positive) as an entry with one non-negative side."""
    debit, credit = (amount, Decimal(0)) if amount > 0 else (Decimal(0), -amount)
    return LedgerEntry.built(
        entry_id=entry_id, account=account, currency=currency, debit=debit, credit=credit, memo=memo, caused_by=list(caused_by)
    )


def _targets(figures: Figures, accounts: Accounts) -> Balances:
    """What each invoice account should hold for these figures: receivable = payables + revenue, per currency."""
    targets: Balances = {}
    for currency in figures.currencies:
        targets[(accounts.receivable, currency)] = figures.total(currency)
        targets[(accounts.revenue, currency)] = -figures.margin[currency]
    for (carrier, currency), amount in figures.payable.items():
        targets[(Accounts.payable(carrier), currency)] = -amount
    return targets


def _postings(
    posted: Balances, targets: Balances, group: str, memo_of: Mapping[str, str], caused_by: Sequence[str]
) -> list[LedgerEntry]:
    entries = []
    for account, currency in sorted(set(posted) | set(targets), key=lambda slot: (slot[1], slot[0])):
        delta = targets.get((account, currency), Decimal(0)) - posted.get((account, currency), Decimal(0))
        if delta != 0:
            entries.append(_entry(f"{group}-{currency}-{account}", account, currency, delta, memo_of[currency], caused_by))
    return entries


def _notes(invoice_id: str, number: int, before: Figures, after: Figures, caused_by: Sequence[str]) -> list[Note]:
    """One note per currency whose total changed between two revisions: credit if it went down, debit if up."""
    old, new = before.totals(), after.totals()
    notes = []
    for currency in sorted(set(old) | set(new)):
        delta = new.get(currency, Decimal(0)) - old.get(currency, Decimal(0))
        if delta != 0:
            notes.append(
                Note.built(
                    note_id=f"{invoice_id}-r{number}-{currency}",
                    kind="credit" if delta < 0 else "debit",
                    to_revision=number,
                    amount=MoneyTotal.built(amount=abs(delta), currency=currency),
                    caused_by=list(caused_by),
                )
            )
    return notes


def _revision(invoice_id: str, number: int, point: ChangePoint, caused_by: Sequence[str]) -> InvoiceRevision:
    figures, currencies = point.figures, point.figures.currencies
    return InvoiceRevision.built(
        invoice_id=invoice_id,
        revision=number,
        issued_at=point.at,
        carrier_charges=[MoneyTotal.built(amount=figures.carrier_charges[c], currency=c) for c in currencies],
        margin=[MoneyTotal.built(amount=figures.margin[c], currency=c) for c in currencies],
        total=[MoneyTotal.built(amount=figures.total(c), currency=c) for c in currencies],
        caused_by=list(caused_by),
    )


@dataclass(frozen=True)
class Invoicing:
    revisions: list[InvoiceRevision]
    notes: list[Note]
    entries: list[LedgerEntry]
    final: Figures | None


def _invoice(shipment_id: str, booking: BookingPayload, points: list[ChangePoint], accounts: Accounts) -> Invoicing:
    """Walk the change points: issue, revise with notes, or re-allocate, posting each account's change."""
    invoice_id = f"INV-{shipment_id}"
    every_leg = frozenset(leg.sequence for leg in booking.legs)
    revisions: list[InvoiceRevision] = []
    notes: list[Note] = []
    entries: list[LedgerEntry] = []
    posted: Balances = {}
    current: Figures | None = None  # the figures of the current revision
    for point in points:
        number = len(revisions) + 1
        memo: dict[str, str] = defaultdict(lambda: f"{invoice_id} revision {number}")
        if current is None:
            if not every_leg <= point.figures.charged_legs:
                continue
            caused_by: Sequence[str] = point.figures.counted
        elif not point.changed:
            continue
        else:
            caused_by = point.changed
            changes = _notes(invoice_id, number, current, point.figures, caused_by)
            if not changes:
                number = 0  # same totals: no revision, only the payables and revenue move
                memo = defaultdict(lambda: f"reallocation at {point.at.isoformat()}")
            notes += changes
            memo |= {note.amount.currency: f"{note.kind} note {note.note_id}" for note in changes}
        group = f"LED-{shipment_id}-r{number}" if number else f"LED-{shipment_id}-adj-{point.at.isoformat()}"
        targets = _targets(point.figures, accounts)
        entries += _postings(posted, targets, group, memo, caused_by)
        posted = targets
        if number:
            revisions.append(_revision(invoice_id, number, point, caused_by))
            current = point.figures
    return Invoicing(revisions, notes, entries, points[-1].figures if points else None)


# --- payments -------------------------------------------------------------------------------------------------------


def _winners(history: Mapping[str, list[Copy]]) -> list[Copy]:
    return [copies[0] for copies in history.values() if not copies[0].event.retracted]


def _rate_for(payment: PaymentEvent, target: str, rates: list[RateEvent]) -> tuple[RateEvent, bool] | None:
    """The rate converting the payment's currency to `target` (and whether it is stated the other way round)."""
    source = payment.payload.amount.currency
    usable = [
        r
        for r in rates
        if {r.payload.base, r.payload.quote} == {source, target} and r.payload.as_of <= payment.occurred_at
    ]
    chosen = max(usable, key=lambda r: (r.payload.as_of, r.key), default=None)
    return None if chosen is None else (chosen, chosen.payload.base != source)


@dataclass(frozen=True)
class Payments:
    records: list[PaymentRecord]
    entries: list[LedgerEntry]
    paid: Mapping[str, Decimal]


def _payments(
    shipment_id: str, payments: list[PaymentEvent], rates: list[RateEvent], invoiced: list[str], missing: list[int], accounts: Accounts
) -> Payments:
    records: list[PaymentRecord] = []
    entries: list[LedgerEntry] = []
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for payment in sorted(payments, key=lambda e: (e.occurred_at, e.key)):
        money = payment.payload.amount
        group, key = f"LED-{shipment_id}-pmt-{payment.key}", payment.key
        target = payment.payload.settles_currency or money.currency
        applied: MoneyTotal | None = None
        rate: RateEvent | None = None
        reason: str | None = None
        if not invoiced:
            reason = f"the invoice is not issued yet: legs {missing} have no charges"
        elif target not in invoiced and payment.payload.settles_currency is None:
            reason = f"{target} is not an invoice currency ({', '.join(invoiced)}) and the payment names no settles_currency"
        elif target not in invoiced:
            reason = f"settles_currency {target} is not an invoice currency ({', '.join(invoiced)})"
        elif target == money.currency:
            applied = MoneyTotal.built(amount=money.amount, currency=target)
        else:
            found = _rate_for(payment, target, rates)
            if found is None:
                reason = f"no rate event between {money.currency} and {target} as of {payment.occurred_at.isoformat()}"
            else:
                rate, inverse = found
                factor = Fraction(rate.payload.rate)
                converted = Fraction(money.amount) / factor if inverse else Fraction(money.amount) * factor
                applied = MoneyTotal.built(amount=round_minor(converted, target), currency=target)

        cited = [key] if rate is None else [key, rate.key]
        memo = f"payment {payment.payload.payment_id} by {payment.payload.payer}"
        if applied is None:
            entries += [
                _entry(f"{group}-{money.currency}-{accounts.cash}", accounts.cash, money.currency, money.amount, memo, cited),
                _entry(f"{group}-{money.currency}-{accounts.suspense}", accounts.suspense, money.currency, -money.amount, memo, cited),
            ]
        elif rate is None:
            entries += [
                _entry(f"{group}-{money.currency}-{accounts.cash}", accounts.cash, money.currency, money.amount, memo, cited),
                _entry(f"{group}-{money.currency}-{accounts.receivable}", accounts.receivable, money.currency, -money.amount, memo, cited),
            ]
        else:
            memo = f"{memo}, converted at {rate.payload.rate} {rate.payload.quote} per {rate.payload.base} ({rate.payload.rate_source})"
            out = applied.currency
            entries += [
                _entry(f"{group}-{money.currency}-{accounts.cash}", accounts.cash, money.currency, money.amount, memo, cited),
                _entry(f"{group}-{money.currency}-{accounts.fx}", accounts.fx, money.currency, -money.amount, memo, cited),
                _entry(f"{group}-{out}-{accounts.fx}", accounts.fx, out, applied.amount, memo, cited),
                _entry(f"{group}-{out}-{accounts.receivable}", accounts.receivable, out, -applied.amount, memo, cited),
            ]
        if applied is not None:
            paid[applied.currency] += applied.amount
        records.append(
            PaymentRecord.built(
                payment_id=payment.payload.payment_id,
                payer=payment.payload.payer,
                amount=money,
                applied=applied,
                rate=None if rate is None else rate.payload.rate,
                rate_set_by=None if rate is None else rate.key,
                status="unallocated" if applied is None else "applied",
                reason=reason,
                set_by=key,
            )
        )
    return Payments(records, [e for e in entries if e.debit or e.credit], dict(paid))


def _line_status(paid: Decimal, outstanding: Decimal) -> LineStatus:
    if outstanding == 0:
        return "paid"
    if outstanding < 0:
        return "overpaid"
    return "open" if paid == 0 else "partially_paid"


def _status(lines: list[BalanceLine]) -> SettlementStatus:
    if lines and all(line.status in ("paid", "overpaid") for line in lines):
        return "overpaid" if any(line.status == "overpaid" for line in lines) else "paid"
    return "partially_paid" if any(line.paid != 0 for line in lines) else "issued"


# --- the settlement -------------------------------------------------------------------------------------------------


def invoice(shipment_id: str, booking: BookingPayload, history: Sequence[Copy]) -> Invoicing:
    """The invoice's revisions, notes and postings from every copy of the events in `history` (settle's), of which
    only the settlement and margin events count: what a settlement of other copies of the payment and rate events
    shares."""
    return _invoiced(shipment_id, booking, _by_key(history))


def _invoiced(shipment_id: str, booking: BookingPayload, copies: Mapping[str, list[Copy]]) -> Invoicing:
    invoice_history = {key: found for key, found in copies.items() if isinstance(found[0].event, InvoiceEvent)}
    return _invoice(shipment_id, booking, _timeline(invoice_history, booking), Accounts.of(booking))


def settle(
    shipment_id: str,
    booking: BookingPayload,
    history: Sequence[Copy],
    holds: Mapping[int, str] | None = None,
    invoicing: Invoicing | None = None,
) -> SettlementRecord:
    """The shipment's settlement from every copy of its settlement, margin, payment and rate events. A payout for
    any leg in `holds` is `held` instead of released, with the legs' reasons (an invoice awaiting verification,
    streams.invoices; an unverified carrier, streams.identity). `invoicing`: `invoice(shipment_id, booking, history)`,
    when the caller has it."""
    holds = holds or {}
    accounts = Accounts.of(booking)
    copies = _by_key(history)
    invoicing = invoicing or _invoiced(shipment_id, booking, copies)
    charged = invoicing.final.charged_legs if invoicing.final else frozenset()
    missing = [leg.sequence for leg in booking.legs if leg.sequence not in charged]

    winners = [copy.event for copy in _winners(copies)]
    current = invoicing.revisions[-1] if invoicing.revisions else None
    invoiced = [line.currency for line in current.total] if current else []
    payments = _payments(
        shipment_id,
        [e for e in winners if isinstance(e, PaymentEvent)],
        [e for e in winners if isinstance(e, RateEvent)],
        invoiced,
        missing,
        accounts,
    )
    if current is None or invoicing.final is None:
        return SettlementRecord.built(
            status="draft",
            missing_charges_for_legs=missing,
            invoices=[],
            notes=[],
            payments=payments.records,
            balance=[],
            payouts=[],
            ledger=payments.entries,
        )

    balance = []
    for line in current.total:
        paid = payments.paid.get(line.currency, Decimal(0))
        outstanding = line.amount - paid
        balance.append(
            BalanceLine.built(
                currency=line.currency,
                invoiced=line.amount,
                paid=paid,
                outstanding=outstanding,
                status=_line_status(paid, outstanding),
            )
        )
    status = _status(balance)
    released = status in ("paid", "overpaid")

    final = invoicing.final
    payouts: list[Payout] = []
    payout_entries: list[LedgerEntry] = []
    for (carrier, currency), amount in sorted(final.payable.items()):
        payout_id = f"PAY-{shipment_id}-{carrier}-{currency}"
        legs = final.payable_legs[(carrier, currency)]
        held = released and not holds.keys().isdisjoint(legs)
        payouts.append(
            Payout.built(
                payout_id=payout_id,
                carrier=carrier,
                legs=sorted(final.payable_legs[(carrier, currency)]),
                amount=MoneyTotal.built(amount=amount, currency=currency),
                status="held" if held else "released" if released else "pending",
                held_reason="; ".join(dict.fromkeys(holds[leg] for leg in sorted(legs) if leg in holds)) if held else None,
            )
        )
        if released and not held and amount != 0:
            cited = sorted(final.payable_by[(carrier, currency)])
            memo = f"payout {payout_id}"
            payable = Accounts.payable(carrier)
            payout_entries += [
                _entry(f"LED-{payout_id}-{accounts.cash}", accounts.cash, currency, -amount, memo, cited),
                _entry(f"LED-{payout_id}-{payable}", payable, currency, amount, memo, cited),
            ]

    return SettlementRecord.built(
        status=status,
        missing_charges_for_legs=missing,
        invoices=invoicing.revisions,
        notes=invoicing.notes,
        payments=payments.records,
        balance=balance,
        payouts=payouts,
        ledger=invoicing.entries + payments.entries + payout_entries,
    )

"""Carriers' invoices for their legs, matched against the ledger's charges and verified by a tax authority.

Pure: the live carrier_invoice and invoice_verification events of one shipment, its booking, its legs' charges and
the registry's word (`Operator`, `Authority.seller_ids`) in; the record part, the refusals and the legs whose payout
waits out. Every choice is made by event data (occurred_at, then event key), none by arrival order.

Decisions, where the issue is silent:

- Who: an invoice counts only from the carrier the booking assigns to its leg (its event's `source`); a verification
  only from a tax verifier the shipment's MTO lists in the registry. Anyone else's is refused `not_entitled`.
- Matching, per invoice (each failed check is one listed mismatch, with what was expected and found):
  - issuer: one of the seller's identifiers (EndpointID, party id, legal or tax registration) is an identifier the
    registry lists for the leg's carrier (values compared without their scheme);
  - currency: the leg's charges have a line in the invoice currency;
  - amount: the invoice's net total (BT-109) equals the leg's charges in that currency;
  - tax: each VAT breakdown's tax is its taxable amount x rate / 100, rounded half-up to the currency's minor
    unit; the breakdowns' taxable amounts add up to the net total and their tax to the tax total (BR-CO-14);
  - invoice_number: no other live invoice of the same carrier uses the number, and the leg has no earlier live
    invoice in the same currency that is not void or red-flushed (the earlier one is the leg's invoice; a re-issue
    follows a red-flush).
- Verification: a void or red-flushed result is final (the earliest such one stands); otherwise the latest result
  stands. A result for an invoice the hub does not hold is listed as a `conflict` (the invoice may come later). A
  `verified` result states the amount payable the authority verified; an invoice whose own differs is mismatched
  (`amount`), so a verification vouches for the content it saw, not for whatever is later sent under the number.
- Hold: with the MTO's `hold_payouts_until_invoice_verified`, a payout for a leg is held until the leg has an
  invoice from its carrier that is matched and verified in each currency the leg is charged in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Iterable

from schemas.base import Money
from schemas.events import BookingPayload, CarrierInvoiceEvent, InvoiceVerificationEvent
from schemas.invoices import CarrierInvoiceRecord, InvoiceCheck, InvoiceMismatch
from schemas.record import LegRecord, Rejected
from streams.authority import Operator
from streams.ledger import round_minor

FINAL = ("void", "red_flushed")


@dataclass(frozen=True)
class CarrierInvoices:
    records: list[CarrierInvoiceRecord]
    rejected: list[Rejected]
    held_legs: frozenset[int]


def _order(event: CarrierInvoiceEvent | InvoiceVerificationEvent) -> tuple[object, str]:
    return event.occurred_at, event.key


def carrier_invoices(
    plan: BookingPayload,
    legs: list[LegRecord],
    invoices: Iterable[CarrierInvoiceEvent],
    checks: Iterable[InvoiceVerificationEvent],
    operator: Operator | None,
    seller_ids: Callable[[str], frozenset[str]],
) -> CarrierInvoices:
    rejected: list[Rejected] = []
    counted: list[CarrierInvoiceEvent] = []
    for event in sorted(invoices, key=_order):
        sequence = event.payload.leg
        if sequence > len(plan.legs):
            rejected.append(Rejected(event=event.key, reason=f"the booking has no leg {sequence} to invoice"))
        elif event.source != plan.legs[sequence - 1].carrier:
            carrier = plan.legs[sequence - 1].carrier
            reason = f"leg {sequence} is carried by {carrier}: {event.source} may not invoice it"
            rejected.append(Rejected(event=event.key, reason=reason, kind="not_entitled"))
        else:
            counted.append(event)

    verifiers = operator.tax_verifiers if operator else frozenset()
    held_numbers = {(e.source, e.payload.invoice_number) for e in counted}
    found: dict[tuple[str, str], list[InvoiceVerificationEvent]] = defaultdict(list)
    for check in sorted(checks, key=_order):
        if check.source not in verifiers:
            reason = f"{check.source} is not a tax verifier the MTO {plan.mto} takes invoice verifications from"
            rejected.append(Rejected(event=check.key, reason=reason, kind="not_entitled"))
            continue
        number = (check.payload.carrier, check.payload.invoice_number)
        if number not in held_numbers:
            reason = f"no invoice {number[1]} from {number[0]} on this shipment to verify"
            rejected.append(Rejected(event=check.key, reason=reason))
            continue
        found[number].append(check)

    records: list[CarrierInvoiceRecord] = []
    numbers_used: dict[tuple[str, str], str] = {}
    leg_invoiced: dict[tuple[int, str], str] = {}  # an invoice is in one currency: a leg's, per currency
    for event in counted:
        payload = event.payload
        number = (event.source, payload.invoice_number)
        results = found.get(number, [])
        final = [c for c in results if c.payload.result in FINAL]
        standing = final[0] if final else (results[-1] if results else None)
        verification = standing.payload.result if standing else "unverified"
        mismatches = _mismatches(event, legs[payload.leg - 1], seller_ids(event.source))
        vouched = standing.payload.payable if standing is not None and standing.payload.result == "verified" else None
        if standing is not None and vouched is not None and vouched != payload.payable:
            # the number was verified, not this content: a carrier that revises a verified invoice (or sends another
            # under its number) to what the charges say has no tax invoice behind the payout it would release
            mismatches.append(
                InvoiceMismatch(
                    field="amount", expected=_text(vouched), found=_text(payload.payable),
                    reason=f"the tax authority verified {payload.invoice_number} for {_text(vouched)} ({standing.key})",
                )
            )
        earlier = numbers_used.get(number)
        if earlier is not None:
            mismatches.append(
                InvoiceMismatch(
                    field="invoice_number", expected="a number the carrier has not used", found=payload.invoice_number,
                    reason=f"{event.source} already invoiced under {payload.invoice_number} (event {earlier})",
                )
            )
        else:
            numbers_used[number] = event.key
        if verification not in FINAL and earlier is None:
            before = leg_invoiced.get((payload.leg, payload.currency))
            if before is not None:
                mismatches.append(
                    InvoiceMismatch(
                        field="invoice_number", expected=before, found=payload.invoice_number,
                        reason=f"leg {payload.leg} is already invoiced under {before}, which is not void or red-flushed",
                    )
                )
            else:
                leg_invoiced[(payload.leg, payload.currency)] = payload.invoice_number
        records.append(
            CarrierInvoiceRecord(
                carrier=event.source,
                leg=payload.leg,
                invoice_number=payload.invoice_number,
                issue_date=payload.issue_date,
                currency=payload.currency,
                net_total=payload.net_total,
                tax_total=payload.tax_total,
                payable=payload.payable,
                seller_name=payload.seller.name,
                match="mismatched" if mismatches else "matched",
                mismatches=mismatches,
                verification=verification,
                verification_set_by=standing.key if standing else None,
                checks=[
                    InvoiceCheck(result=c.payload.result, at=c.occurred_at, verifier=c.source, set_by=c.key)
                    for c in results
                ],
                set_by=event.key,
            )
        )

    # a payout is per currency: a leg is cleared when each currency it is charged in has a matched and verified
    # invoice, so one verified invoice does not release the leg's charges in another currency
    cleared = {(r.leg, r.currency) for r in records if r.match == "matched" and r.verification == "verified"}
    hold = operator is not None and operator.hold_payouts_until_invoice_verified
    held = frozenset(
        leg.sequence
        for leg in plan.legs
        if not any(done == leg.sequence for done, _ in cleared)
        or not {(leg.sequence, c.amount.currency) for c in legs[leg.sequence - 1].charges} <= cleared
    ) if hold else frozenset()
    records.sort(key=lambda r: (r.leg, r.carrier, r.invoice_number, r.set_by))
    return CarrierInvoices(records, rejected, held)


def _text(money: Money | Decimal) -> str:
    return f"{money.amount} {money.currency}" if isinstance(money, Money) else str(money)


def _mismatches(event: CarrierInvoiceEvent, leg: LegRecord, registered: frozenset[str]) -> list[InvoiceMismatch]:
    payload, out = event.payload, []
    named = sorted({identifier.value for identifier in payload.seller.identifiers})
    if registered.isdisjoint(named):
        out.append(
            InvoiceMismatch(
                field="issuer",
                expected=", ".join(sorted(registered)) or f"an identifier registered for {event.source}",
                found=", ".join(named) or "no seller identifier",
                reason=f"the seller {payload.seller.name!r} is not identified as {event.source}, the leg's carrier",
            )
        )
    charged: dict[str, Decimal] = defaultdict(Decimal)
    for charge in leg.charges:
        charged[charge.amount.currency] += charge.amount.amount
    currency = payload.currency
    if currency not in charged:
        out.append(
            InvoiceMismatch(
                field="currency", expected=", ".join(sorted(charged)) or "no charges", found=currency,
                reason=f"leg {leg.sequence} has no charges in {currency}",
            )
        )
    elif charged[currency] != payload.net_total.amount:
        out.append(
            InvoiceMismatch(
                field="amount", expected=f"{charged[currency]} {currency}", found=_text(payload.net_total),
                reason=f"the net total is not leg {leg.sequence}'s charges in {currency}",
            )
        )
    for subtotal in payload.tax_subtotals:
        due = round_minor(Fraction(subtotal.taxable.amount) * Fraction(subtotal.percent) / 100, currency)
        if due != subtotal.tax.amount:
            out.append(
                InvoiceMismatch(
                    field="tax", expected=f"{due} {currency}", found=_text(subtotal.tax),
                    reason=f"{subtotal.percent}% of {subtotal.taxable.amount} ({subtotal.category}) is {due}",
                )
            )
    taxable = sum((t.taxable.amount for t in payload.tax_subtotals), Decimal(0))
    tax = sum((t.tax.amount for t in payload.tax_subtotals), Decimal(0))
    if taxable != payload.net_total.amount:
        out.append(
            InvoiceMismatch(
                field="tax", expected=_text(payload.net_total), found=f"{taxable} {currency}",
                reason="the VAT breakdown's taxable amounts do not add up to the net total",
            )
        )
    if tax != payload.tax_total.amount:
        out.append(
            InvoiceMismatch(
                field="tax", expected=f"{tax} {currency}", found=_text(payload.tax_total),
                reason="the tax total is not the sum of the VAT breakdown (EN 16931 BR-CO-14)",
            )
        )
    return out

"""Human-readable views of a shipment record for the terminal."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from typing import Any

from schemas.identifiers import TransportMode
from schemas.record import ShipmentRecord


WIDTH = 100  # the widest line of a summary: a terminal of 100 columns shows it unwrapped


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%MZ") if at else "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def summary(record: ShipmentRecord) -> str:
    out = [f"Shipment {record.shipment_id}  (version {record.version}, status {record.status.upper()})"]
    if record.booking_status:
        revised = f", amended {_when(record.booking_revised_at)}" if record.booking_revised_at else ""
        out.append(f"  Booking: {record.booking_status}{revised}")
    if record.booking is None:
        out.append(f"  awaiting the booking; {len(record.awaiting_placement)} event(s) held until it arrives")
        return "\n".join(out)
    booking = record.booking
    cargo = booking.cargo
    out += [
        f"  Responsible operator (MTO): {record.responsible_operator}",
        f"  Shipper:   {booking.shipper.name} ({booking.shipper.party_id})",
        f"  Consignee: {booking.consignee.name} ({booking.consignee.party_id})",
        f"  Cargo:     {cargo.description}; {cargo.pieces} pieces, {cargo.gross_weight_kg} kg,"
        f" containers {', '.join(cargo.containers) or '-'}",
        f"  Declared value: {booking.declared_value.amount} {booking.declared_value.currency}",
        "  Through document: "
        + (
            f"{record.through_document.number} ({record.through_document.kind}, by {record.through_document.issuer});"
            f" {record.through_document.status}, holder {record.through_document.holder or '-'},"
            f" {len(record.through_document.endorsements)} endorsement(s)"
            if record.through_document
            else "not yet issued"
        ),
        f"  Current location: {record.current_location or '-'}  (per {record.location_set_by or '-'})",
        "",
    ]
    # Narrow enough for 100 columns: the carrier's answer and the documents go on a line of their own under each leg.
    rows = [["leg", "mode", "carrier", "route", "status", "departed", "arrived"]]
    notes: list[str] = []
    for leg in record.legs:
        rows.append(
            [
                str(leg.sequence),
                TransportMode(leg.mode).name.lower(),
                leg.carrier,
                f"{leg.origin}->{leg.destination}",
                leg.status,
                _when(leg.departure.actual),
                _when(leg.arrival.actual),
            ]
        )
        documents = ", ".join(f"{d.kind} {d.number}" for d in leg.documents) or "none yet"
        notes.append(f"       {leg.carrier_response}; documents: {documents}")
    table = _table(rows)
    out += ["  " + line for line in table[:2]]
    for line, note in zip(table[2:], notes):
        out += ["  " + line, note]
    if record.custody:
        out += ["", "  Custody (the MTO is responsible throughout):"]
        for holder in record.custody:
            where = f"leg {holder.leg}" if holder.leg else holder.role
            out.append(f"    {_when(holder.since):17}  ->  {_when(holder.until):17}  {holder.party} ({where})")
    for found in record.discrepancies:
        out.append(
            f"  Discrepancy at {found.location} {_when(found.at)}: {found.kind} {found.found} vs {found.expected}"
            f" ({found.compared_with})"
        )
    exceptions = [(leg.sequence, m) for leg in record.legs for m in leg.exceptions]
    if exceptions:
        out += ["", "  Exceptions:"]
        out += [f"    leg {seq}: {m.status} at {m.location or '-'} {_when(m.at)} ({m.raw_code})" for seq, m in exceptions]
    charges = [["leg", "carrier", "code", "amount"]]
    for charge in record.journey_charges:
        charges.append(["all", charge.carrier, charge.code, f"{charge.amount.amount} {charge.amount.currency}"])
    for leg in record.legs:
        for charge in leg.charges:
            charges.append([str(leg.sequence), charge.carrier, charge.code, f"{charge.amount.amount} {charge.amount.currency}"])
    if len(charges) > 1:
        out += ["", "  Charges:"] + ["    " + line for line in _table(charges)]
        out.append("    total: " + ", ".join(f"{m.amount} {m.currency}" for m in record.charges_total))
    policy = record.insurance.policy
    out += [
        "",
        "  Insurance: "
        + (
            f"policy {policy.policy_number} by {policy.insurer}, {policy.insured_value.amount}"
            f" {policy.insured_value.currency}, {policy.conditions}"
            if policy
            else "none"
        ),
    ]
    out += _settlement(record)
    out += _carrier_invoices(record)
    for claim in record.claims:
        where = f"leg {claim.leg}, in the custody of {claim.custody_carrier}" if claim.localised else "not localised"
        out.append(f"  Claim {claim.claim_id}: {claim.kind}, {where}; status {claim.status}")
        out.append(f"    evidence: {', '.join(claim.evidence)}")
        if claim.liability:
            out.append(f"    MTO liability limit ({claim.liability.regime}): {claim.liability.basis}")
        if claim.liable_carrier:
            out.append(f"    recourse against: {claim.liable_carrier}")
    out += _trade(record)
    for refused in record.rejected:
        out.append(f"  Refused {refused.event}: {refused.reason}")
    out.append(
        f"  Events applied: {record.events_applied} (retracted: {record.retracted_events},"
        f" awaiting placement: {len(record.awaiting_placement)})"
    )
    out.append(f"  {version_note(record)}")
    return "\n".join(line for long in out for line in _wrapped(long))


def version_note(record: ShipmentRecord) -> str:
    """Why "version N" and "events applied" differ: the version counts every distinct copy taken in."""
    superseded = record.version - record.events_applied - record.retracted_events
    return (
        f"Version {record.version} counts every distinct event copy the hub took in (a revision is a copy of its"
        f" own); {record.events_applied} event(s) are in force, {record.retracted_events} retracted"
        + (f" and {superseded} copy(ies) were superseded by a later revision." if superseded > 0 else ".")
    )


def _wrapped(line: str) -> list[str]:
    """A line longer than WIDTH, wrapped with its own indent plus two."""
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _trade(record: ShipmentRecord) -> list[str]:
    """Customs, the parties' verification, the letter of credit and the release (issue 16), when the record has any."""
    out = []
    for declaration in record.customs:
        steps = " > ".join(step.status for step in declaration.history)
        out.append(f"  Customs {declaration.direction} {declaration.declaration_number} at {declaration.location}: {steps}")
        for hold in declaration.holds:
            cleared = f"cleared {_when(hold.cleared_at)}" if hold.cleared_at else "OPEN"
            out.append(f"    hold ({hold.kind}) {_when(hold.opened_at)}, {cleared}")
    if record.customs or record.letter_of_credit:
        verified = [v.party_id for v in record.verifications if v.state == "verified"]
        out.append(f"  Verified parties: {', '.join(verified) or 'none'}")
    credit = record.letter_of_credit
    if credit is not None and credit.presentation is not None:
        presented = credit.presentation
        out.append(f"  L/C {credit.terms.credit_number} ({credit.terms.issuing_bank}): presentation {presented.result}")
        out += [f"    {d.code} ({d.rule}): {d.reason}" for d in presented.discrepancies]
    if record.release is not None and (record.customs or record.release.status == "issued"):
        where = f" to {record.release.to} at {record.release.location}, {_when(record.release.issued_at)}"
        out.append(f"  Release: {record.release.status}{where if record.release.status == 'issued' else ''}")
        out += [f"    waiting: {c.name}: {c.reason}" for c in record.release.conditions if not c.met]
        out += [f"    since issued: {note}" for note in record.release.since_issued]
    return out


def _settlement(record: ShipmentRecord) -> list[str]:
    settlement = record.settlement
    if settlement is None:
        return []
    out = ["", f"  Settlement: {settlement.status}"]
    if not settlement.invoices:
        out.append(f"    draft: no charges yet for legs {settlement.missing_charges_for_legs}")
        return out
    current = settlement.invoices[-1]
    out.append(
        f"    Invoice {current.invoice_id} revision {current.revision} to {record.shipper.party_id if record.shipper else '-'}: "
        + ", ".join(f"{m.amount} {m.currency}" for m in current.total)
    )
    for note in settlement.notes:
        out.append(f"    {note.kind} note {note.note_id}: {note.amount.amount} {note.amount.currency} (-> revision {note.to_revision})")
    for line in settlement.balance:
        out.append(f"    {line.currency}: invoiced {line.invoiced}, paid {line.paid}, outstanding {line.outstanding} ({line.status})")
    for payment in settlement.payments:
        applied = f" -> {payment.applied.amount} {payment.applied.currency} at {payment.rate}" if payment.rate and payment.applied else ""
        out.append(f"    payment {payment.payment_id}: {payment.amount.amount} {payment.amount.currency}{applied} ({payment.status})")
    for payout in settlement.payouts:
        held = f": {payout.held_reason}" if payout.held_reason else ""
        out.append(f"    payout {payout.carrier} legs {payout.legs}: {payout.amount.amount} {payout.amount.currency} ({payout.status}{held})")
    return out


def _carrier_invoices(record: ShipmentRecord) -> list[str]:
    """Each carrier's e-invoice for its leg: matched against the leg's charges, and the tax verifier's result."""
    out = []
    for invoice in record.carrier_invoices:
        out.append(
            f"  Carrier invoice {invoice.invoice_number} from {invoice.carrier} (leg {invoice.leg}): net {invoice.net_total.amount}"
            f" + tax {invoice.tax_total.amount} {invoice.currency}; {invoice.match}, {invoice.verification}"
        )
        out += [f"    {m.field}: expected {m.expected}, found {m.found} ({m.reason})" for m in invoice.mismatches]
    return out


def parked_report(summaries: list[dict[str, Any]], now: datetime) -> tuple[list[dict[str, Any]], int]:
    """(one row per reference, oldest first, each with its age as of `now`; how many distinct events wait).

    A summary on hub.references.parked is written when its reference's waiting list changes, so its `oldest_age_s`
    is the age then (0.1 s for the first event parked): the age is taken here from `oldest_since`. An event that
    names several references waits on each, so the distinct count comes from the events' ids, not a sum."""
    rows = []
    for summary in summaries:
        since = datetime.fromisoformat(summary["oldest_since"]).astimezone(timezone.utc)
        rows.append({**summary, "oldest_since": utc(since), "oldest_age_s": round((now - since).total_seconds(), 3)})
    rows.sort(key=lambda row: -row["oldest_age_s"])
    return rows, len({event for summary in summaries for event in summary["events"]})


def utc(at: datetime) -> str:
    """UTC, ISO 8601, with `Z`: the one time format of the command line."""
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def age(seconds: float) -> str:
    """A short human age: 42s, 9m05s, 3h12m, 2d04h."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
